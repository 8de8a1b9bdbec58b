//! Presence as Yjs editor bindings share it in awareness.
//!
//! Each client's awareness state is JSON of the shape y-codemirror, y-quill and y-prosemirror
//! use: `{ "user": { "name", "color", "colorLight" }, "cursor": { "anchor", "head" } }`, where
//! `anchor` and `head` are Yjs relative positions in their JSON form
//! (`{ "type", "tname", "item", "assoc" }`). Speaking exactly that shape is what lets a stock
//! Yjs editor's caret show up in Tandem and Tandem's in theirs. Relative positions are yrs
//! sticky indices under another name; this module converts between the two.

use serde::{Deserialize, Serialize};
use yrs::{Assoc, ClientID, IndexScope, IndexedSequence, ReadTxn, StickyIndex, TextRef, ID};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PresenceState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    #[serde(default)]
    pub cursor: Option<Cursor>,
    /// The person came by a view link. Only the server's word counts: it sets this on a
    /// viewer's state and removes it from an editor's, so a page never sends it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub viewer: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub color: String,
    #[serde(
        rename = "colorLight",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub color_light: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub anchor: RelativePosition,
    pub head: RelativePosition,
}

/// A Yjs relative position in its JSON form. Every field is always written, `null` included,
/// as Yjs writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelativePosition {
    #[serde(rename = "type", default)]
    pub ty: Option<JsonId>,
    #[serde(default)]
    pub tname: Option<String>,
    #[serde(default)]
    pub item: Option<JsonId>,
    /// Yjs: 0 or more associates with the item to the right, negative with the left.
    #[serde(default)]
    pub assoc: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonId {
    pub client: u64,
    pub clock: u32,
}

impl From<&ID> for JsonId {
    fn from(id: &ID) -> Self {
        JsonId {
            client: id.client.get(),
            clock: id.clock,
        }
    }
}

impl From<JsonId> for ID {
    fn from(id: JsonId) -> Self {
        ID::new(ClientID::new(id.client), id.clock)
    }
}

impl RelativePosition {
    pub fn from_sticky(index: &StickyIndex) -> Self {
        let assoc = match index.assoc {
            Assoc::After => 0,
            Assoc::Before => -1,
        };
        let (ty, tname, item) = match index.scope() {
            IndexScope::Relative(id) => (None, None, Some(JsonId::from(id))),
            IndexScope::Nested(id) => (Some(JsonId::from(id)), None, None),
            IndexScope::Root(name) => (None, Some(name.to_string()), None),
        };
        RelativePosition {
            ty,
            tname,
            item,
            assoc,
        }
    }

    pub fn to_sticky(&self) -> Option<StickyIndex> {
        let assoc = if self.assoc >= 0 {
            Assoc::After
        } else {
            Assoc::Before
        };
        let scope = match (&self.item, &self.ty, &self.tname) {
            (Some(item), _, _) => IndexScope::Relative((*item).into()),
            (None, Some(ty), _) => IndexScope::Nested((*ty).into()),
            (None, None, Some(name)) => IndexScope::Root(name.as_str().into()),
            (None, None, None) => return None,
        };
        Some(StickyIndex::new(scope, assoc))
    }
}

/// A sticky index at `index` of `text`. yrs has none for the end of a text associated to the
/// right; Yjs then points at the text itself, which resolves to its end, and so does this.
pub fn sticky_at<T: ReadTxn>(text: &TextRef, txn: &T, index: u32, assoc: Assoc) -> StickyIndex {
    text.sticky_index(txn, index, assoc)
        .unwrap_or_else(|| StickyIndex::from_type(txn, text, assoc))
}

/// Colours for people: each readable as text and as a caret on light and dark pages.
pub const PALETTE: [&str; 12] = [
    "#e5484d", "#f76b15", "#d6a000", "#46a758", "#12a594", "#0090ff", "#3e63dd", "#8e4ec6",
    "#d6409f", "#a18072", "#ec5d5e", "#0d74ce",
];

const ADJECTIVES: [&str; 24] = [
    "Quiet", "Brave", "Clever", "Gentle", "Lucky", "Nimble", "Bright", "Calm", "Eager", "Jolly",
    "Kind", "Merry", "Noble", "Proud", "Swift", "Witty", "Bold", "Cosy", "Daring", "Fuzzy",
    "Happy", "Keen", "Mellow", "Sunny",
];
const ANIMALS: [&str; 24] = [
    "Otter", "Falcon", "Panda", "Lynx", "Heron", "Badger", "Koala", "Marten", "Puffin", "Fox",
    "Gecko", "Ibis", "Jaguar", "Lemur", "Moose", "Narwhal", "Owl", "Quokka", "Raven", "Seal",
    "Tapir", "Walrus", "Yak", "Zebra",
];

/// A friendly name and a colour for a newcomer, from any random number.
pub fn generated_identity(random: u64) -> User {
    let adjective = ADJECTIVES[(random % ADJECTIVES.len() as u64) as usize];
    let animal = ANIMALS[((random / 97) % ANIMALS.len() as u64) as usize];
    let color = PALETTE[((random / 9973) % PALETTE.len() as u64) as usize];
    User {
        name: format!("{adjective} {animal}"),
        color: color.to_string(),
        color_light: Some(format!("{color}33")),
    }
}

/// A colour from someone else's state, if it is a plain hex colour; anything else could
/// smuggle CSS into a `style` attribute.
pub fn safe_color(color: &str) -> Option<&str> {
    let hex = color.strip_prefix('#')?;
    (matches!(hex.len(), 3 | 4 | 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(color)
}

/// Up to two initials of a name, for a badge.
pub fn initials(name: &str) -> String {
    let letters: String = name
        .split_whitespace()
        .filter_map(|word| word.chars().next())
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    if letters.is_empty() {
        "?".into()
    } else {
        letters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{new_doc, CONTENT};
    use yrs::{Text, Transact};

    #[test]
    fn relative_positions_have_the_yjs_json_shape() {
        let position = RelativePosition {
            ty: None,
            tname: None,
            item: Some(JsonId {
                client: 7,
                clock: 3,
            }),
            assoc: 0,
        };
        assert_eq!(
            serde_json::to_string(&position).unwrap(),
            r#"{"type":null,"tname":null,"item":{"client":7,"clock":3},"assoc":0}"#
        );
        // As a stock Yjs client sends it, missing fields included.
        let from_yjs: RelativePosition =
            serde_json::from_str(r#"{"type":null,"tname":"content","item":null}"#).unwrap();
        assert_eq!(from_yjs.tname.as_deref(), Some("content"));
    }

    #[test]
    fn sticky_indices_survive_the_round_trip_through_json() {
        let doc = new_doc();
        let text = doc.get_or_insert_text(CONTENT);
        text.insert(&mut doc.transact_mut(), 0, "hello world");
        for (index, assoc) in [
            (0, Assoc::After),
            (5, Assoc::After),
            (5, Assoc::Before),
            (11, Assoc::After),
        ] {
            let sticky = sticky_at(&text, &doc.transact(), index, assoc);
            let json = serde_json::to_string(&RelativePosition::from_sticky(&sticky)).unwrap();
            let back: RelativePosition = serde_json::from_str(&json).unwrap();
            let offset = back
                .to_sticky()
                .unwrap()
                .get_offset(&doc.transact())
                .unwrap();
            assert_eq!(offset.index, index, "{json}");
        }
        // An empty root text is addressed by its name.
        let empty = doc.get_or_insert_text("title");
        let sticky = sticky_at(&empty, &doc.transact(), 0, Assoc::After);
        let json = RelativePosition::from_sticky(&sticky);
        assert_eq!(json.tname.as_deref(), Some("title"));
    }

    #[test]
    fn identities_colours_and_initials() {
        let user = generated_identity(123_456_789);
        assert_eq!(user.name.split(' ').count(), 2);
        assert!(PALETTE.contains(&user.color.as_str()));
        assert_eq!(initials("Quiet Otter"), "QO");
        assert_eq!(initials("  ada "), "A");
        assert_eq!(initials(""), "?");
        assert_eq!(safe_color("#12abEF"), Some("#12abEF"));
        assert_eq!(safe_color("red;background:url(x)"), None);
        assert_eq!(safe_color("#12345"), None);
    }
}
