//! This person's name and colour, remembered by the browser for every document.

use crate::protocol::presence::{generated_identity, safe_color, User};

const KEY: &str = "tandem.identity";

/// The remembered identity, or a newly generated one (remembered from now on).
pub fn load() -> User {
    let stored: Option<User> = super::local_storage()
        .and_then(|s| s.get_item(KEY).ok().flatten())
        .and_then(|json| serde_json::from_str(&json).ok())
        .filter(|user: &User| !user.name.trim().is_empty() && safe_color(&user.color).is_some());
    stored.unwrap_or_else(|| {
        let random = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
        let user = generated_identity(random);
        save(&user);
        user
    })
}

pub fn save(user: &User) {
    if let (Some(storage), Ok(json)) = (super::local_storage(), serde_json::to_string(user)) {
        let _ = storage.set_item(KEY, &json);
    }
}
