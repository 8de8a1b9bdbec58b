//! The History panel: the versions kept of a document, each shown rendered with what changed
//! since, and **Restore**, which turns the document back into one as a single new change that
//! everyone sees and that its author can undo.
//!
//! Restoring is an ordinary edit made in this page (see [`live::restore_version`]): the source
//! and the title are set to the version's and travel like typing, so stock Yjs clients see an
//! ordinary update and this person's undo takes it back.

use super::live;
use crate::doc_id::DocId;
use crate::markdown;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// A version as the list shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: i64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub authors: Vec<String>,
}

/// A version's texts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionText {
    pub title: String,
    pub content: String,
}

#[server]
pub async fn list_versions(id: String) -> Result<Vec<HistoryEntry>, ServerFnError> {
    use crate::server::hub::Hub;
    let id = crate::app::document::edit_link(&id).await?;
    let hub = use_context::<Hub>().ok_or_else(|| ServerFnError::new("no document hub"))?;
    let versions = hub.versions(&id).await.map_err(|error| {
        tracing::warn!(doc = %crate::server::redact::doc_tag(&id), %error, "versions could not be listed");
        ServerFnError::new("the history could not be read")
    })?;
    Ok(versions
        .into_iter()
        .map(|v| HistoryEntry {
            id: v.id,
            created_at: v.created_at,
            authors: v.authors,
        })
        .collect())
}

#[server]
pub async fn load_version(id: String, version: i64) -> Result<VersionText, ServerFnError> {
    use crate::server::hub::Hub;
    let id = crate::app::document::edit_link(&id).await?;
    let hub = use_context::<Hub>().ok_or_else(|| ServerFnError::new("no document hub"))?;
    match hub.version(&id, version).await {
        Ok(Some(v)) => Ok(VersionText {
            title: v.title,
            content: v.content,
        }),
        Ok(None) => Err(ServerFnError::new("no such version")),
        Err(error) => {
            tracing::warn!(doc = %crate::server::redact::doc_tag(&id), %error, "a version could not be read");
            Err(ServerFnError::new("the version could not be read"))
        }
    }
}

/// The History panel, shown while `open` is set.
#[component]
pub fn HistoryPanel(id: DocId, open: RwSignal<bool>, content: RwSignal<String>) -> impl IntoView {
    let entries = RwSignal::new(None::<Result<Vec<HistoryEntry>, String>>);
    let selected = RwSignal::new(None::<(HistoryEntry, VersionText)>);
    let id = StoredValue::new(id.as_str().to_owned());
    Effect::new(move |_| {
        if open.get() {
            let id = id.get_value();
            selected.set(None);
            leptos::task::spawn_local(async move {
                entries.set(Some(list_versions(id).await.map_err(|e| e.to_string())));
            });
        }
    });
    // Rendered once per selection, not on every keystroke while the panel is open.
    let rendered = Memo::new(move |_| {
        selected
            .read()
            .as_ref()
            .map(|(_, text)| markdown::render(&text.content))
            .unwrap_or_default()
    });
    let choose = move |entry: HistoryEntry| {
        let id = id.get_value();
        leptos::task::spawn_local(async move {
            if let Ok(text) = load_version(id, entry.id).await {
                selected.set(Some((entry, text)));
            }
        });
    };
    view! {
        <Show when=move || open.get()>
            <section class="history" aria-label="History" data-testid="history">
                <header class="history-header">
                    <h2>"History"</h2>
                    <button type="button" class="tool" on:click=move |_| open.set(false)>
                        "Close"
                    </button>
                </header>
                <ol class="history-list">
                    {move || match entries.get() {
                        None => view! { <li>"Loading…"</li> }.into_any(),
                        Some(Err(error)) => view! { <li role="alert">{error}</li> }.into_any(),
                        Some(Ok(list)) if list.is_empty() => {
                            view! {
                                <li>
                                    "No versions yet: one is kept after five minutes of writing, and when everyone has left."
                                </li>
                            }
                                .into_any()
                        }
                        Some(Ok(list)) => {
                            list.into_iter()
                                .map(|entry| {
                                    let label = entry_label(&entry);
                                    let chosen = entry.id;
                                    let pick = entry.clone();
                                    view! {
                                        <li>
                                            <button
                                                type="button"
                                                class="history-entry"
                                                data-testid="version"
                                                aria-pressed=move || {
                                                    selected
                                                        .read()
                                                        .as_ref()
                                                        .is_some_and(|(e, _)| e.id == chosen)
                                                        .to_string()
                                                }
                                                on:click=move |_| choose(pick.clone())
                                            >
                                                {label}
                                            </button>
                                        </li>
                                    }
                                })
                                .collect_view()
                                .into_any()
                        }
                    }}
                </ol>
                {move || {
                    selected
                        .get()
                        .map(|(entry, text)| {
                            let changes = changes_since(&text.content, &content.read());
                            let restore = text.clone();
                            view! {
                                <div class="history-version" data-testid="version-view">
                                    <p class="history-when">{entry_label(&entry)}</p>
                                    <p class="history-title" data-testid="version-title">
                                        {if text.title.trim().is_empty() {
                                            "Title: (none)".to_string()
                                        } else {
                                            format!("Title: {}", text.title.trim())
                                        }}
                                    </p>
                                    <button
                                        type="button"
                                        class="button"
                                        data-testid="restore"
                                        on:click=move |_| {
                                            live::restore_version(&restore);
                                            open.set(false);
                                        }
                                    >
                                        "Restore this version"
                                    </button>
                                    <h3>"What changed since"</h3>
                                    <div class="history-changes" data-testid="changes">
                                        {changes
                                            .into_iter()
                                            .map(|line| match line {
                                                Line::Same(text) => view! { <div>{text}</div> }.into_any(),
                                                Line::Gone(text) => view! { <del>{text}</del> }.into_any(),
                                                Line::Added(text) => view! { <ins>{text}</ins> }.into_any(),
                                            })
                                            .collect_view()}
                                    </div>
                                    <h3>"This version"</h3>
                                    <article
                                        class="preview history-preview"
                                        data-testid="version-preview"
                                        inner_html=move || rendered.get()
                                    ></article>
                                </div>
                            }
                        })
                }}
            </section>
        </Show>
    }
}

/// "2026-11-23 22:50 UTC · Ada, Bea"
fn entry_label(entry: &HistoryEntry) -> String {
    let when = utc_minute(entry.created_at);
    if entry.authors.is_empty() {
        when
    } else {
        format!("{when} · {}", entry.authors.join(", "))
    }
}

/// A time as `YYYY-MM-DD HH:MM UTC` (the same on the server and in the browser).
pub fn utc_minute(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// One line of the comparison between a version and the document now.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Same(String),
    /// In the version, gone now.
    Gone(String),
    /// Not in the version, there now.
    Added(String),
}

/// Most lines of context shown around what changed.
const CONTEXT_LINES: usize = 2;
/// Most lines of what changed shown, each way: a long document rewritten shows the start.
const MAX_CHANGED_LINES: usize = 200;

/// What changed between `version` and `now`, by lines: the lines they share at the start and
/// the end, and between them what the version had and what is there now. Linear in the text,
/// however large.
pub fn changes_since(version: &str, now: &str) -> Vec<Line> {
    let old: Vec<&str> = version.lines().collect();
    let new: Vec<&str> = now.lines().collect();
    if old == new {
        return Vec::new();
    }
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let mut lines = Vec::new();
    for line in &old[prefix.saturating_sub(CONTEXT_LINES)..prefix] {
        lines.push(Line::Same((*line).to_owned()));
    }
    for line in old[prefix..old.len() - suffix]
        .iter()
        .take(MAX_CHANGED_LINES)
    {
        lines.push(Line::Gone((*line).to_owned()));
    }
    for line in new[prefix..new.len() - suffix]
        .iter()
        .take(MAX_CHANGED_LINES)
    {
        lines.push(Line::Added((*line).to_owned()));
    }
    let after = old.len() - suffix;
    for line in &old[after..(after + CONTEXT_LINES).min(old.len())] {
        lines.push(Line::Same((*line).to_owned()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_the_same_everywhere() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(1_795_474_200_000), "2026-11-23 22:50 UTC");
        assert_eq!(utc_minute(951_782_400_000), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn changes_show_what_went_and_what_came_with_some_context() {
        let version = "a\nb\nc\nd\ne\nf";
        let now = "a\nb\nc\nX\ne\nf";
        assert_eq!(
            changes_since(version, now),
            [
                Line::Same("b".into()),
                Line::Same("c".into()),
                Line::Gone("d".into()),
                Line::Added("X".into()),
                Line::Same("e".into()),
                Line::Same("f".into()),
            ]
        );
        assert_eq!(changes_since("same", "same"), []);
        assert_eq!(
            changes_since("kept text", ""),
            [Line::Gone("kept text".into())]
        );
    }
}
