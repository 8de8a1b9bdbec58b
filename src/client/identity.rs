//! This person's name and colour, remembered by the browser for every document.

use crate::protocol::presence::{generated_identity, safe_color, User};

const KEY: &str = "tandem.identity";

/// The remembered identity, or a newly generated one (remembered from now on).
pub fn load() -> User {
    let stored: Option<User> = super::load_local(KEY)
        .filter(|user: &User| !user.name.trim().is_empty() && safe_color(&user.color).is_some());
    stored.unwrap_or_else(|| {
        let random = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
        let user = generated_identity(random);
        save(&user);
        user
    })
}

pub fn save(user: &User) {
    super::save_local(KEY, user);
}
