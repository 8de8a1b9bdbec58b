//! The home page.

use super::live;
use leptos::prelude::*;

#[component]
pub fn HomePage() -> impl IntoView {
    // Filled in the browser after hydration: the server never lists documents.
    let recent = RwSignal::new(Vec::<live::RecentDoc>::new());
    Effect::new(move |_| recent.set(live::recent_documents()));

    view! {
        <main class="home">
            <section class="hero">
                <h1 class="brand">"Tandem"</h1>
                <p class="tagline">"Write Markdown together, in real time. Share the edit link to write together, or the view link to let people read along."</p>
                // A plain link: /new answers with a redirect to a fresh random id, so it works
                // even before (or without) the page's script.
                <a class="button primary" href="/new" rel="external" data-testid="new-document">"New document"</a>
            </section>
            <section class="recent">
                <h2>"Recently opened on this device"</h2>
                <Show
                    when=move || !recent.read().is_empty()
                    fallback=|| view! { <p class="muted">"Documents you open appear here."</p> }
                >
                    <ul class="recent-list">
                        <For
                            each=move || recent.get()
                            key=|doc| doc.id.clone()
                            children=|doc| {
                                let href = format!("/d/{}", doc.id);
                                let title = if doc.title.trim().is_empty() { "Untitled".to_string() } else { doc.title.clone() };
                                view! {
                                    <li><a href=href rel="external">{title}</a></li>
                                }
                            }
                        />
                    </ul>
                </Show>
            </section>
        </main>
    }
}
