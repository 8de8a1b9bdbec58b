//! Which offline copies of documents a browser keeps, and when the page writes its copy, as
//! plain logic: the page stores each open document's state so that edits made offline survive
//! a closed tab; this decides which older copies make room for a new one ([`plan`]) and when a
//! write is due ([`SaveSchedule`]). The page (`client::offline`, `client::session`) carries it
//! out in IndexedDB; here native tests reach it.

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
    /// It holds changes the server had not confirmed when it was written: dropping it may lose
    /// work, so such copies go last.
    #[serde(default)]
    pub unsynced: bool,
    /// The page that wrote it (a random id per page load): a copy written by another tab is
    /// merged with, not overwritten.
    #[serde(default)]
    pub writer: String,
}

/// Newest time a record may claim: a day ahead of the page's clock, for clocks that differ.
const FUTURE_SLACK_MS: f64 = 24.0 * 3600.0 * 1000.0;

impl Kept {
    /// Whether the record can be believed at `now`: within the size bound, and written at a
    /// real time not far in the future. One that claims to be newest forever would otherwise
    /// make every other copy go first.
    pub fn is_sound(&self, now: f64) -> bool {
        self.bytes <= MAX_COPY_BYTES
            && self.saved_at.is_finite()
            && self.saved_at >= 0.0
            && self.saved_at <= now + FUTURE_SLACK_MS
            && !self.id.is_empty()
    }
}

/// What to do to store a copy of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Store it after dropping these other documents' copies.
    Store { drop: Vec<String> },
    /// Too large to keep; an older copy of the document stays.
    TooLarge,
    /// The copy holds nothing the server lacks, and making room for it would drop a copy
    /// that does: keep the store as it is.
    NoRoom,
}

/// Decides how to store `copy` next to the copies `kept` (its own document's old copy among
/// them is replaced): others go until there are at most [`MAX_COPIES`] copies of at most
/// [`MAX_TOTAL_BYTES`] in all, and at least `squeeze` of them go (the browser's own quota was
/// found full that many times). Copies the server has confirmed go first, oldest first; then
/// unconfirmed ones, oldest first, but only to make room for a copy that is unconfirmed too.
pub fn plan(kept: &[Kept], copy: &Kept, squeeze: usize) -> Plan {
    if copy.bytes > MAX_COPY_BYTES {
        return Plan::TooLarge;
    }
    let mut others: Vec<&Kept> = kept.iter().filter(|other| other.id != copy.id).collect();
    // Last to go first: unconfirmed before confirmed, then newest first; equal times by id, so
    // the choice is stable.
    others.sort_by(|a, b| {
        b.unsynced
            .cmp(&a.unsynced)
            .then_with(|| b.saved_at.total_cmp(&a.saved_at))
            .then_with(|| a.id.cmp(&b.id))
    });
    // Summed wide: records claiming absurd sizes must not wrap or saturate the total.
    let mut total: u128 = others
        .iter()
        .map(|other| u128::from(other.bytes))
        .sum::<u128>()
        + u128::from(copy.bytes);
    let mut drop = Vec::new();
    while others.len() + 1 > MAX_COPIES
        || total > u128::from(MAX_TOTAL_BYTES)
        || drop.len() < squeeze
    {
        let Some(next) = others.pop() else { break };
        if next.unsynced && !copy.unsynced {
            return Plan::NoRoom;
        }
        total -= u128::from(next.bytes);
        drop.push(next.id.clone());
    }
    Plan::Store { drop }
}

/// A write after this person's own change waits this long, so typing is written once a second.
pub const AFTER_OWN_CHANGE_MS: f64 = 1_000.0;
/// Others' changes are on the server already: written this long after, at most.
pub const AFTER_OTHERS_CHANGE_MS: f64 = 30_000.0;
/// The next write waits this many times as long as the last one took, so a large document's
/// copy takes a small share of the page's time.
pub const SPACING_FACTOR: f64 = 10.0;
/// After a failed or refused write, the next waits this long.
pub const AFTER_FAILURE_MS: f64 = 30_000.0;
/// A write still unfinished after this long is taken as lost (the store hung), and one more may
/// start on a reopened store; if that one hangs too, writes stop until one ends (each holds a
/// whole copy in memory).
pub const WRITE_HUNG_MS: f64 = 60_000.0;
/// The longest spacing between writes, however long the last one took (a write that spanned
/// a night's sleep took hours of the clock and none of the page's time).
pub const MAX_SPACING_MS: f64 = 60_000.0;

/// How a write of the copy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored,
    /// Refused: too large, or no room.
    Refused,
    Failed,
}

/// When the page writes its copy. Times are milliseconds since the epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SaveSchedule {
    /// This person's changes not yet in the copy, since.
    own_since: Option<f64>,
    /// Others' changes not yet in the copy, since.
    others_since: Option<f64>,
    /// A write under way, since.
    writing_since: Option<f64>,
    /// A write was taken as hung and another started in its place.
    replaced_hung: bool,
    /// No write starts before this.
    not_before: f64,
}

impl SaveSchedule {
    /// This person changed the document at `now`.
    pub fn changed_here(&mut self, now: f64) {
        self.own_since.get_or_insert(now);
    }

    /// Someone else's change arrived at `now`.
    pub fn changed_elsewhere(&mut self, now: f64) {
        self.others_since.get_or_insert(now);
    }

    /// Whether the copy lacks something of this person's own.
    pub fn has_own_changes(&self) -> bool {
        self.own_since.is_some()
    }

    /// Whether the copy lacks anything, or a write is under way.
    pub fn behind(&self) -> bool {
        self.own_since.is_some() || self.others_since.is_some() || self.writing_since.is_some()
    }

    /// Whether a write should start at `now`. `urgent` (the page is being hidden or left):
    /// whenever the copy is behind and no write is under way, regardless of spacing.
    pub fn due(&self, now: f64, urgent: bool) -> bool {
        let writing = self
            .writing_since
            .is_some_and(|since| now - since < WRITE_HUNG_MS || self.replaced_hung);
        if writing || !(self.own_since.is_some() || self.others_since.is_some()) {
            return false;
        }
        if urgent {
            return true;
        }
        let own_due = self
            .own_since
            .is_some_and(|since| now - since >= AFTER_OWN_CHANGE_MS);
        let others_due = self
            .others_since
            .is_some_and(|since| now - since >= AFTER_OTHERS_CHANGE_MS);
        now >= self.not_before && (own_due || others_due)
    }

    /// Whether the write under way is taken as hung at `now`: the next one should reopen the
    /// store.
    pub fn hung(&self, now: f64) -> bool {
        self.writing_since
            .is_some_and(|since| now - since >= WRITE_HUNG_MS)
    }

    /// A write of everything so far started at `now`.
    pub fn started(&mut self, now: f64) {
        self.replaced_hung = self.writing_since.is_some();
        self.own_since = None;
        self.others_since = None;
        self.writing_since = Some(now);
    }

    /// The write started at `started_at` ended at `now`. A failed one leaves what it carried
    /// to be written again: as this person's own change, since it may hold some.
    pub fn finished(&mut self, started_at: f64, now: f64, written: Written) {
        self.replaced_hung = false;
        if written == Written::Failed {
            self.own_since.get_or_insert(started_at);
        }
        if self.writing_since != Some(started_at) {
            // A hung write ending late: the one that replaced it decides what comes next.
            return;
        }
        self.writing_since = None;
        let spacing = (SPACING_FACTOR * (now - started_at).max(0.0)).min(MAX_SPACING_MS);
        self.not_before = match written {
            Written::Stored => now + spacing,
            Written::Refused | Written::Failed => now + AFTER_FAILURE_MS.max(spacing),
        };
    }
}

/// A mark left in local storage while a document's kept copies are merged into a page, so
/// that a copy yrs cannot take (which stops the page) is not merged on every load for ever.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MergeMark {
    /// When the merge began, in milliseconds since the epoch.
    pub at: f64,
    /// How many loads in a row have begun it.
    pub tries: u32,
}

/// A mark younger than this is another tab merging the same copies right now.
pub const MERGE_BUSY_MS: f64 = 10_000.0;
/// Loads that may fail merging the copies before they are dropped.
pub const MERGE_TRIES: u32 = 2;

/// What to do with a document's kept copies on load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeVerdict {
    /// Merge them, marking the attempt with `tries` if `mark` (not when another tab is
    /// merging them now: its mark stands).
    Merge { tries: u32, mark: bool },
    /// They stopped the page [`MERGE_TRIES`] times: drop them.
    Drop,
}

/// Decides [`MergeVerdict`] from the mark found at `now`, if any. A page closed in the middle
/// of a merge leaves a mark too, so one failed attempt is retried; only a second drops the
/// copies.
pub fn merge_verdict(mark: Option<MergeMark>, now: f64) -> MergeVerdict {
    match mark {
        None => MergeVerdict::Merge {
            tries: 1,
            mark: true,
        },
        Some(mark) if mark.at <= now && now - mark.at < MERGE_BUSY_MS => MergeVerdict::Merge {
            tries: mark.tries,
            mark: false,
        },
        Some(mark) if mark.tries >= MERGE_TRIES => MergeVerdict::Drop,
        Some(mark) => MergeVerdict::Merge {
            tries: mark.tries.saturating_add(1),
            mark: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(id: &str, bytes: u64, saved_at: f64) -> Kept {
        Kept {
            id: id.into(),
            bytes,
            saved_at,
            unsynced: false,
            writer: String::new(),
        }
    }

    fn unsynced(id: &str, bytes: u64, saved_at: f64) -> Kept {
        Kept {
            unsynced: true,
            ..copy(id, bytes, saved_at)
        }
    }

    fn dropped(plan: Plan) -> Vec<String> {
        match plan {
            Plan::Store { drop } => drop,
            other => panic!("not stored: {other:?}"),
        }
    }

    #[test]
    fn a_copy_over_a_mebibyte_is_kept() {
        assert_eq!(
            dropped(plan(&[], &copy("big", 5 * 1024 * 1024, 9e9), 0)),
            Vec::<String>::new()
        );
        assert_eq!(
            dropped(plan(&[], &copy("big", MAX_COPY_BYTES, 9e9), 0)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_copy_over_the_document_limit_is_not_kept() {
        assert_eq!(
            plan(&[], &copy("huge", MAX_COPY_BYTES + 1, 9e9), 0),
            Plan::TooLarge
        );
        assert_eq!(plan(&[], &copy("huge", u64::MAX, 9e9), 0), Plan::TooLarge);
    }

    #[test]
    fn past_the_count_the_oldest_others_go() {
        let kept: Vec<Kept> = (0..MAX_COPIES)
            .map(|i| copy(&format!("doc{i}"), 10, 1_000.0 + i as f64))
            .collect();
        // A new document: the oldest goes.
        assert_eq!(dropped(plan(&kept, &copy("new", 10, 9e9), 0)), ["doc0"]);
        // One already kept replaces its own copy: nothing goes.
        assert_eq!(
            dropped(plan(&kept, &copy("doc0", 10, 9e9), 0)),
            Vec::<String>::new()
        );
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
        assert_eq!(
            dropped(plan(&kept, &copy("new", 30 * mib, 9e9), 0)),
            ["oldest"]
        );
        // 240 and 32 less "newest"'s own 40: fits as is.
        assert_eq!(
            dropped(plan(&kept, &copy("newest", 32 * mib, 9e9), 0)),
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
        let drop = dropped(plan(&kept, &copy("new", 10, 9e9), 0));
        assert!(!drop.contains(&"new".to_string()));
        assert_eq!(drop.len(), 2);
    }

    #[test]
    fn copies_with_unconfirmed_changes_go_last_and_never_for_a_confirmed_one() {
        let mut kept: Vec<Kept> = (0..MAX_COPIES - 1)
            .map(|i| copy(&format!("doc{i}"), 10, 1_000.0 + i as f64))
            .collect();
        kept.push(unsynced("offline-work", 10, 1.0));
        // The oldest is unconfirmed: the oldest confirmed one goes instead.
        assert_eq!(dropped(plan(&kept, &copy("new", 10, 9e9), 0)), ["doc0"]);
        // Only unconfirmed copies left to drop: a confirmed copy is not worth one.
        let all_unsynced: Vec<Kept> = (0..MAX_COPIES)
            .map(|i| unsynced(&format!("doc{i}"), 10, i as f64))
            .collect();
        assert_eq!(plan(&all_unsynced, &copy("new", 10, 9e9), 0), Plan::NoRoom);
        // An unconfirmed one is: the oldest goes.
        assert_eq!(
            dropped(plan(&all_unsynced, &unsynced("new", 10, 9e9), 0)),
            ["doc0"]
        );
    }

    #[test]
    fn records_that_cannot_be_believed_are_not_sound() {
        let now = 1_800_000_000_000.0;
        assert!(copy("a", 10, now).is_sound(now));
        assert!(copy("a", MAX_COPY_BYTES, now + 3_600_000.0).is_sound(now));
        for bad in [
            copy("a", MAX_COPY_BYTES + 1, now),
            copy("a", 10, f64::NAN),
            copy("a", 10, f64::INFINITY),
            copy("a", 10, -1.0),
            copy("a", 10, 1e300),
            copy("", 10, now),
        ] {
            assert!(!bad.is_sound(now), "{bad:?}");
        }
    }

    #[test]
    fn own_changes_are_written_after_a_second_and_others_after_thirty() {
        let mut schedule = SaveSchedule::default();
        assert!(!schedule.due(0.0, false));
        assert!(!schedule.due(0.0, true), "nothing to write");
        schedule.changed_here(1_000.0);
        schedule.changed_here(1_500.0);
        assert!(!schedule.due(1_999.0, false));
        assert!(schedule.due(2_000.0, false));
        assert!(schedule.due(1_001.0, true));
        schedule.started(2_000.0);
        assert!(!schedule.due(2_000.0, true), "one write at a time");

        let mut schedule = SaveSchedule::default();
        schedule.changed_elsewhere(0.0);
        assert!(!schedule.due(29_999.0, false));
        assert!(schedule.due(30_000.0, false));
        assert!(schedule.due(1.0, true));
    }

    #[test]
    fn slow_writes_space_out_the_next_and_failures_wait_and_retry() {
        let mut schedule = SaveSchedule::default();
        schedule.changed_here(0.0);
        schedule.started(1_000.0);
        // Changes during the write wait for it.
        schedule.changed_here(1_100.0);
        assert!(!schedule.due(2_500.0, false));
        // It took 2 s: the next waits 20 s.
        schedule.finished(1_000.0, 3_000.0, Written::Stored);
        assert!(!schedule.due(22_999.0, false));
        assert!(schedule.due(23_000.0, false));
        // Leaving does not wait for the spacing.
        assert!(schedule.due(3_001.0, true));

        schedule.started(23_000.0);
        schedule.finished(23_000.0, 23_010.0, Written::Failed);
        assert!(schedule.has_own_changes(), "what failed is written again");
        assert!(!schedule.due(53_009.0, false));
        assert!(schedule.due(53_010.0, false));

        schedule.started(60_000.0);
        schedule.finished(60_000.0, 60_010.0, Written::Refused);
        assert!(!schedule.behind());
    }

    #[test]
    fn a_write_that_never_ends_does_not_stop_the_next_for_good() {
        let mut schedule = SaveSchedule::default();
        schedule.changed_here(0.0);
        schedule.started(1_000.0);
        schedule.changed_here(2_000.0);
        assert!(!schedule.due(60_999.0, false));
        assert!(schedule.due(61_000.0, false));
        assert!(schedule.hung(61_000.0));
        // The hung write's late end does not clear the next one's.
        schedule.started(61_000.0);
        schedule.changed_here(61_500.0);
        // Nor does a second hang start a third: each holds a whole copy.
        assert!(!schedule.due(200_000.0, false));
        schedule.finished(1_000.0, 62_000.0, Written::Stored);
        assert!(!schedule.due(62_001.0, true));
        schedule.finished(61_000.0, 62_500.0, Written::Stored);
        assert!(schedule.due(62_501.0, true));
    }

    #[test]
    fn a_write_across_a_night_does_not_hold_off_the_next_for_days() {
        let mut schedule = SaveSchedule::default();
        schedule.changed_here(0.0);
        schedule.started(1_000.0);
        let morning = 1_000.0 + 10.0 * 3_600_000.0;
        schedule.finished(1_000.0, morning, Written::Stored);
        schedule.changed_here(morning);
        assert!(schedule.due(morning + MAX_SPACING_MS, false));
    }

    #[test]
    fn copies_that_stopped_the_page_twice_are_dropped_and_another_tabs_merge_is_left_alone() {
        let now = 1_000_000.0;
        assert_eq!(
            merge_verdict(None, now),
            MergeVerdict::Merge {
                tries: 1,
                mark: true
            }
        );
        // Another tab began a moment ago.
        let busy = MergeMark {
            at: now - 2_000.0,
            tries: 1,
        };
        assert_eq!(
            merge_verdict(Some(busy), now),
            MergeVerdict::Merge {
                tries: 1,
                mark: false
            }
        );
        // A page that never finished: once retried, twice dropped.
        let stale = MergeMark {
            at: now - 60_000.0,
            tries: 1,
        };
        assert_eq!(
            merge_verdict(Some(stale), now),
            MergeVerdict::Merge {
                tries: 2,
                mark: true
            }
        );
        let twice = MergeMark { tries: 2, ..stale };
        assert_eq!(merge_verdict(Some(twice), now), MergeVerdict::Drop);
        // A mark from the future is no proof of another tab.
        let future = MergeMark {
            at: now + 60_000.0,
            tries: 2,
        };
        assert_eq!(merge_verdict(Some(future), now), MergeVerdict::Drop);
    }

    #[test]
    fn a_full_quota_squeezes_out_the_oldest_others_never_the_copy_itself() {
        let kept = vec![copy("me", 1, 0.0), copy("b", 1, 5.0), copy("a", 1, 3.0)];
        assert_eq!(
            dropped(plan(&kept, &copy("me", 1, 9e9), 0)),
            Vec::<String>::new()
        );
        assert_eq!(dropped(plan(&kept, &copy("me", 1, 9e9), 1)), ["a"]);
        assert_eq!(dropped(plan(&kept, &copy("me", 1, 9e9), 2)), ["a", "b"]);
        assert_eq!(dropped(plan(&kept, &copy("me", 1, 9e9), 9)), ["a", "b"]);
    }
}
