//! Which offline copies of documents a browser keeps, as plain functions: the page stores each
//! open document's state so that edits made offline survive a closed tab, and this decides
//! which older copies make room for a new one. The page (`client::offline`) carries it out in
//! IndexedDB; here native tests reach it.

use serde::{Deserialize, Serialize};

/// Most documents kept.
pub const MAX_COPIES: usize = 50;
/// Largest copy kept, in bytes: the server's default document limit (`--max-doc-bytes`).
pub const MAX_COPY_BYTES: u64 = 32 * 1024 * 1024;
/// Most bytes kept in all.
pub const MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;

/// What is known of one stored copy without reading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// The document's id.
    pub id: String,
    /// The copy's size in bytes.
    pub bytes: u64,
    /// When it was written, in milliseconds since the epoch.
    pub saved_at: f64,
}

/// What to do to store a copy of `bytes` bytes of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Store it after dropping these other documents' copies, oldest first.
    Store { drop: Vec<String> },
    /// Too large to keep: drop this document's old copy instead, which would only mislead.
    TooLarge,
}

/// Decides how to store a copy of document `id` of `bytes` bytes next to the copies `kept`
/// (the document's own old copy among them is replaced): the oldest others go until there are
/// at most [`MAX_COPIES`] copies of at most [`MAX_TOTAL_BYTES`] in all, and at least `squeeze`
/// of them go (the browser's own quota was found full that many times).
pub fn plan(kept: &[Kept], id: &str, bytes: u64, squeeze: usize) -> Plan {
    if bytes > MAX_COPY_BYTES {
        return Plan::TooLarge;
    }
    let mut others: Vec<&Kept> = kept.iter().filter(|copy| copy.id != id).collect();
    // Newest first, so the oldest come off the end; equal times by id, so the choice is stable.
    others.sort_by(|a, b| {
        b.saved_at
            .total_cmp(&a.saved_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    // Summed wide: records claiming absurd sizes must not wrap or saturate the total.
    let mut total: u128 = others
        .iter()
        .map(|copy| u128::from(copy.bytes))
        .sum::<u128>()
        + u128::from(bytes);
    let mut drop = Vec::new();
    while others.len() + 1 > MAX_COPIES
        || total > u128::from(MAX_TOTAL_BYTES)
        || drop.len() < squeeze
    {
        let Some(oldest) = others.pop() else { break };
        total -= u128::from(oldest.bytes);
        drop.push(oldest.id.clone());
    }
    Plan::Store { drop }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(id: &str, bytes: u64, saved_at: f64) -> Kept {
        Kept {
            id: id.into(),
            bytes,
            saved_at,
        }
    }

    fn dropped(plan: Plan) -> Vec<String> {
        match plan {
            Plan::Store { drop } => drop,
            Plan::TooLarge => panic!("refused"),
        }
    }

    #[test]
    fn a_copy_over_a_mebibyte_is_kept() {
        assert_eq!(
            dropped(plan(&[], "big", 5 * 1024 * 1024, 0)),
            Vec::<String>::new()
        );
        assert_eq!(
            dropped(plan(&[], "big", MAX_COPY_BYTES, 0)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_copy_over_the_document_limit_is_not_kept() {
        assert_eq!(plan(&[], "huge", MAX_COPY_BYTES + 1, 0), Plan::TooLarge);
        assert_eq!(plan(&[], "huge", u64::MAX, 0), Plan::TooLarge);
    }

    #[test]
    fn past_the_count_the_oldest_others_go() {
        let kept: Vec<Kept> = (0..MAX_COPIES)
            .map(|i| copy(&format!("doc{i}"), 10, 1_000.0 + i as f64))
            .collect();
        // A new document: the oldest goes.
        assert_eq!(dropped(plan(&kept, "new", 10, 0)), ["doc0"]);
        // One already kept replaces its own copy: nothing goes.
        assert_eq!(dropped(plan(&kept, "doc0", 10, 0)), Vec::<String>::new());
    }

    #[test]
    fn past_the_total_the_oldest_others_go_until_the_new_copy_fits() {
        let mib = 1024 * 1024;
        let kept = vec![
            copy("middle", 100 * mib, 2_000.0),
            copy("oldest", 100 * mib, 1_000.0),
            copy("newest", 40 * mib, 3_000.0),
        ];
        // 240 MiB kept and 30 more: the oldest goes, then it fits.
        assert_eq!(dropped(plan(&kept, "new", 30 * mib, 0)), ["oldest"]);
        // 240 and 32 less "newest"'s own 40: fits as is.
        assert_eq!(
            dropped(plan(&kept, "newest", 32 * mib, 0)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn hostile_records_cannot_make_it_drop_the_new_copy_or_loop() {
        // Sizes that overflow and times that are not numbers.
        let kept = vec![
            copy("a", u64::MAX, f64::NAN),
            copy("b", u64::MAX, -1.0),
            copy("new", u64::MAX, 0.0),
        ];
        let drop = dropped(plan(&kept, "new", 10, 0));
        assert!(!drop.contains(&"new".to_string()));
        assert_eq!(drop.len(), 2);
    }

    #[test]
    fn a_full_quota_squeezes_out_the_oldest_others_never_the_copy_itself() {
        let kept = vec![copy("me", 1, 0.0), copy("b", 1, 5.0), copy("a", 1, 3.0)];
        assert_eq!(dropped(plan(&kept, "me", 1, 0)), Vec::<String>::new());
        assert_eq!(dropped(plan(&kept, "me", 1, 1)), ["a"]);
        assert_eq!(dropped(plan(&kept, "me", 1, 2)), ["a", "b"]);
        assert_eq!(dropped(plan(&kept, "me", 1, 9)), ["a", "b"]);
    }
}
