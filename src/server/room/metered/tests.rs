use super::*;
use crate::protocol::{CONTENT, TITLE};
use std::time::Duration;
use yrs::{Doc, GetString, OffsetKind, Options, StateVector, Text, Transact};

fn doc(client: u64) -> Doc {
    let doc = Doc::with_options(Options {
        client_id: ClientID::new(client),
        offset_kind: OffsetKind::Utf16,
        ..Default::default()
    });
    doc.get_or_insert_text(CONTENT);
    doc.get_or_insert_text(TITLE);
    doc
}

fn texts(doc: &Doc) -> (String, String) {
    let (content, title) = (
        doc.get_or_insert_text(CONTENT),
        doc.get_or_insert_text(TITLE),
    );
    let txn = doc.transact();
    (content.get_string(&txn), title.get_string(&txn))
}

fn whole(doc: &Doc) -> Vec<u8> {
    doc.transact()
        .encode_state_as_update_v1(&StateVector::default())
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// Applies `update` to a copy of `base` whole, and to another copy metered; returns both.
fn both_ways(base: &[u8], update: &[u8]) -> (Doc, Doc, Metered) {
    let (plain, metered) = (doc(100), doc(101));
    for target in [&plain, &metered] {
        target
            .transact_mut()
            .apply_update(Update::decode_v1(base).unwrap())
            .unwrap();
    }
    plain
        .transact_mut()
        .apply_update(Update::decode_v1(update).unwrap())
        .unwrap();
    let outcome = apply(&mut metered.transact_mut(), update, later()).unwrap();
    (plain, metered, outcome)
}

fn sync(from: &Doc, to: &Doc) {
    let sv = to.transact().state_vector();
    let diff = from.transact().encode_state_as_update_v1(&sv);
    to.transact_mut()
        .apply_update(Update::decode_v1(&diff).unwrap())
        .unwrap();
}

#[test]
fn blocks_that_wait_for_other_clients_go_in_after_them() {
    // Client 3 writes inside client 2's text, which is inside client 1's: yrs encodes the
    // highest client first, so each section waits for the next.
    let peers = [doc(1), doc(2), doc(3)];
    for round in 0..5u32 {
        for (i, peer) in peers.iter().enumerate() {
            if i > 0 {
                sync(&peers[i - 1], peer);
            }
            let content = peer.get_or_insert_text(CONTENT);
            let mut txn = peer.transact_mut();
            let len = content.len(&txn);
            content.insert(&mut txn, len / 2, &format!("[{i}.{round}]"));
            content.remove_range(&mut txn, 0, u32::from(round % 2 == 1));
        }
    }
    let update = whole(&peers[2]);
    let (plain, metered, outcome) = both_ways(&whole(&doc(9)), &update);
    assert!(outcome.finished);
    assert!(outcome.error.is_none());
    assert!(
        outcome.waiting.is_none(),
        "nothing waits: every dependency is in the update"
    );
    assert_eq!(texts(&metered), texts(&plain));
    assert_eq!(texts(&metered), texts(&peers[2]));
    assert_eq!(
        metered.transact().state_vector(),
        plain.transact().state_vector()
    );
}

#[test]
fn what_waits_for_something_absent_is_handed_back_and_integrates_later() {
    let (a, b, c) = (doc(1), doc(2), doc(3));
    a.get_or_insert_text(CONTENT)
        .insert(&mut a.transact_mut(), 0, "hello world");
    sync(&a, &b);
    let content = b.get_or_insert_text(CONTENT);
    content.insert(&mut b.transact_mut(), 5, ",");
    content.insert(&mut b.transact_mut(), 0, ">> ");
    // c titles the document, knowing nothing of a or b.
    c.get_or_insert_text(TITLE)
        .insert(&mut c.transact_mut(), 0, "Greeting");
    sync(&c, &b);
    // b's changes and c's, without a's text that b's are written into.
    let update = b
        .transact()
        .encode_state_as_update_v1(&a.transact().state_vector());
    let (plain, metered, outcome) = both_ways(&whole(&doc(9)), &update);
    assert!(outcome.finished);
    let waiting = outcome.waiting.expect("b's inserts wait for a's text");
    assert_eq!(waiting.waits_on, HashSet::from([ClientID::new(1)]));
    // c's title waits for nothing: it is in, as it is when applied whole.
    assert_eq!(texts(&metered), (String::new(), "Greeting".into()));
    assert_eq!(texts(&metered), texts(&plain));
    sync(&a, &metered);
    metered
        .transact_mut()
        .apply_update(Update::decode_v1(&waiting.update).unwrap())
        .unwrap();
    assert_eq!(texts(&metered), texts(&b));
}

/// `n` one-character inserts by client 2, each right after a different character of client
/// 1's `n` characters (so no two join), and deletions of every other one of client 1's.
fn scattered(n: u32) -> (Vec<u8>, Vec<u8>) {
    let a = doc(1);
    a.get_or_insert_text(CONTENT)
        .insert(&mut a.transact_mut(), 0, &"x".repeat(n as usize));
    let base = whole(&a);
    let b = doc(2);
    sync(&a, &b);
    let content = b.get_or_insert_text(CONTENT);
    for i in 0..n {
        // Right to left, each after the i-th last character.
        content.insert(&mut b.transact_mut(), n - i, "y");
    }
    // The text is now "xyxy…": the x of clock j is at 2j. Every other one goes, from the
    // right, so the deleted ranges stay apart.
    for j in (0..n).rev().filter(|j| j % 2 == 0) {
        content.remove_range(&mut b.transact_mut(), 2 * j, 1);
    }
    let update = b
        .transact()
        .encode_state_as_update_v1(&a.transact().state_vector());
    (base, update)
}

#[test]
fn nothing_is_applied_once_the_time_is_up() {
    let (base, update) = scattered(50);
    let target = doc(9);
    target
        .transact_mut()
        .apply_update(Update::decode_v1(&base).unwrap())
        .unwrap();
    let outcome = apply(&mut target.transact_mut(), &update, Instant::now()).unwrap();
    assert!(!outcome.finished);
    assert!(outcome.error.is_none());
    assert_eq!(texts(&target).0, "x".repeat(50));
    assert_eq!(target.transact().state_vector().get(&ClientID::new(2)), 0);
    // With time, the same update goes in whole.
    let outcome = apply(&mut target.transact_mut(), &update, later()).unwrap();
    assert!(outcome.finished);
    assert_eq!(texts(&target).0.matches('y').count(), 50);
}

#[test]
fn deletions_are_applied_range_by_range_too() {
    let (base, update) = scattered(50);
    let target = doc(9);
    target
        .transact_mut()
        .apply_update(Update::decode_v1(&base).unwrap())
        .unwrap();
    // The deletions alone, range by range: each is a piece of its own.
    let update = Update::decode_v1(&update).unwrap();
    let mut deletions_only = vec![0u8];
    deletions_only.extend(yrs::updates::encoder::Encode::encode_v1(
        update.delete_set(),
    ));
    let outcome = apply(&mut target.transact_mut(), &deletions_only, Instant::now()).unwrap();
    assert!(!outcome.finished);
    assert_eq!(texts(&target).0, "x".repeat(50));
    let outcome = apply(&mut target.transact_mut(), &deletions_only, later()).unwrap();
    assert!(outcome.finished);
    assert_eq!(texts(&target).0, "x".repeat(25));
}

#[test]
fn blocks_past_a_clients_clock_wait_for_those_before_them_and_leave_no_hole() {
    let a = doc(5);
    let content = a.get_or_insert_text(CONTENT);
    content.insert(&mut a.transact_mut(), 0, "hello");
    let first = whole(&a);
    let sv = a.transact().state_vector();
    content.insert(&mut a.transact_mut(), 5, " world");
    let middle_sv = a.transact().state_vector();
    content.insert(&mut a.transact_mut(), 0, ">");
    // Only the last insertion: clocks 11 and on, while the receiver stops at 5.
    let last = a.transact().encode_state_as_update_v1(&middle_sv);
    let target = doc(9);
    target
        .transact_mut()
        .apply_update(Update::decode_v1(&first).unwrap())
        .unwrap();
    let outcome = apply(&mut target.transact_mut(), &last, later()).unwrap();
    assert!(outcome.finished);
    let waiting = outcome
        .waiting
        .expect("the insertion waits for clocks 5 to 10");
    assert_eq!(waiting.waits_on, HashSet::from([ClientID::new(5)]));
    assert_eq!(texts(&target).0, "hello");
    assert_eq!(target.transact().state_vector().get(&ClientID::new(5)), 5);
    // Once the clocks before it arrive, it goes in, and everything encodes.
    let middle = a.transact().encode_state_as_update_v1(&sv);
    apply(&mut target.transact_mut(), &middle, later()).unwrap();
    apply(&mut target.transact_mut(), &waiting.update, later()).unwrap();
    assert_eq!(texts(&target), texts(&a));
    let again = doc(10);
    again
        .transact_mut()
        .apply_update(Update::decode_v1(&whole(&target)).unwrap())
        .unwrap();
    assert_eq!(texts(&again), texts(&a));
}

/// The start of an update of one section: `blocks` blocks of client 5 from clock 0.
fn section_of_client_5(blocks: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.write_var(1u32);
    bytes.write_var(blocks);
    bytes.write_var(5u64);
    bytes.write_var(0u32);
    bytes
}

/// An item "ab" at the start of the content.
fn write_ab_at_the_start(bytes: &mut Vec<u8>) {
    bytes.write_u8(BLOCK_ITEM_STRING_REF_NUMBER);
    bytes.write_var(1u32);
    bytes.write_string(CONTENT);
    bytes.write_string("ab");
}

#[test]
fn a_piece_yrs_refuses_stops_the_rest() {
    // An item naming a parent that is no type: yrs refuses it.
    let mut bytes = section_of_client_5(2);
    // "ab" at the start of the content.
    write_ab_at_the_start(&mut bytes);
    // "c" inside an item of client 1, which the document does not have.
    bytes.write_u8(BLOCK_ITEM_STRING_REF_NUMBER);
    bytes.write_var(0u32);
    bytes.write_var(5u64);
    bytes.write_var(0u32);
    bytes.write_string("c");
    bytes.write_var(0u32);
    let target = doc(9);
    let outcome = apply(&mut target.transact_mut(), &bytes, later()).unwrap();
    assert!(outcome.error.is_some(), "{outcome:?}");
    assert!(!outcome.finished);
    assert_eq!(texts(&target).0, "ab");
}

#[test]
fn garbage_is_an_error_and_applies_nothing() {
    let target = doc(9);
    for garbage in [&[0xff, 0xff][..], &[1, 200, 1, 0], &[1, 1, 1, 0, 0x47]] {
        assert!(apply(&mut target.transact_mut(), garbage, later()).is_err());
    }
    assert_eq!(texts(&target), (String::new(), String::new()));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// Whatever three peers type, delete and exchange, the update one of them sends applies
    /// metered to the same document as whole, with the same part left waiting.
    #[test]
    fn metered_applies_to_the_same_document(
        edits in proptest::collection::vec((0usize..3, 0u32..1000, 0u8..5, "[a-c😀]{1,3}"), 1..80),
        sender in 0usize..3,
        base_of in 0usize..4,
    ) {
        let peers = [doc(1), doc(2), doc(3)];
        let mut snapshot = whole(&doc(9));
        for (step, (who, at, kind, insert)) in edits.into_iter().enumerate() {
            let peer = &peers[who];
            let (content, title) = (peer.get_or_insert_text(CONTENT), peer.get_or_insert_text(TITLE));
            {
                let mut txn = peer.transact_mut();
                let len = content.len(&txn);
                match kind {
                    0 if len > 0 => {
                        let at = at % len;
                        content.remove_range(&mut txn, at, (len - at).min(3));
                    }
                    1 => title.insert(&mut txn, 0, &insert),
                    _ => content.insert(&mut txn, at % (len + 1), &insert),
                }
            }
            if kind == 4 {
                sync(&peers[who], &peers[(who + 1) % 3]);
            }
            if step == 10 && base_of < 3 {
                snapshot = whole(&peers[base_of]);
            }
        }
        // The sender's update as if for another peer: it may wait for blocks that peer had
        // and the receiver (holding `snapshot`) never saw.
        let other = (sender + 1) % 3;
        let update = peers[sender]
            .transact()
            .encode_state_as_update_v1(&peers[other].transact().state_vector());
        let (plain, metered, outcome) = both_ways(&snapshot, &update);
        proptest::prop_assert!(outcome.finished);
        proptest::prop_assert!(outcome.error.is_none());
        // Where the update starts past a client's clock, yrs integrates around the hole and
        // the room waits for what comes before (see above); otherwise they agree at once.
        let lowest = Update::decode_v1(&update).unwrap().state_vector_lower();
        let receiver = doc(9);
        receiver.transact_mut().apply_update(Update::decode_v1(&snapshot).unwrap()).unwrap();
        let had = receiver.transact().state_vector();
        if lowest.iter().all(|(client, clock)| *clock <= had.get(client)) {
            proptest::prop_assert_eq!(texts(&metered), texts(&plain));
            proptest::prop_assert_eq!(metered.transact().state_vector(), plain.transact().state_vector());
        }
        // Whatever waits, once given what it waits for, completes the same document.
        for peer in &peers {
            sync(peer, &metered);
            sync(peer, &plain);
        }
        if let Some(waiting) = outcome.waiting {
            metered.transact_mut().apply_update(Update::decode_v1(&waiting.update).unwrap()).unwrap();
        }
        proptest::prop_assert_eq!(texts(&metered), texts(&plain));
    }
}

/// An update of client 5: a deleted run of 3 at the start of the content, an empty item
/// whose right origin is a client nobody has, and "ok" after the run's second clock.
fn with_an_empty_item(empty: u8) -> Vec<u8> {
    let mut bytes = section_of_client_5(3);
    bytes.write_u8(BLOCK_ITEM_DELETED_REF_NUMBER);
    bytes.write_var(1u32);
    bytes.write_string(CONTENT);
    bytes.write_var(3u32);
    bytes.write_u8(HAS_RIGHT_ORIGIN | empty);
    bytes.write_var(77u64);
    bytes.write_var(0u32);
    if empty == BLOCK_ITEM_STRING_REF_NUMBER {
        bytes.write_string("");
    } else {
        bytes.write_var(0u32);
    }
    bytes.write_u8(HAS_ORIGIN | BLOCK_ITEM_STRING_REF_NUMBER);
    bytes.write_var(5u64);
    bytes.write_var(1u32);
    bytes.write_string("ok");
    bytes.write_var(0u32);
    bytes
}

#[test]
fn an_empty_item_is_dropped_as_yrs_drops_it_and_waits_for_nothing() {
    // Found by fuzzing: yrs drops empty items as it decodes, so the item after one goes in.
    for empty in [BLOCK_ITEM_DELETED_REF_NUMBER, BLOCK_ITEM_STRING_REF_NUMBER] {
        let update = with_an_empty_item(empty);
        let (plain, metered, outcome) = both_ways(&whole(&doc(9)), &update);
        assert!(outcome.finished);
        assert!(outcome.waiting.is_none(), "{outcome:?}");
        assert_eq!(texts(&plain).0, "ok");
        assert_eq!(texts(&metered), texts(&plain));
    }
}

#[test]
fn an_empty_collected_range_refuses_the_whole_update_as_yrs_does() {
    let mut bytes = section_of_client_5(2);
    write_ab_at_the_start(&mut bytes);
    bytes.write_u8(BLOCK_GC_REF_NUMBER);
    bytes.write_var(0u32);
    bytes.write_var(0u32);
    assert!(Update::decode_v1(&bytes).is_err());
    let target = doc(9);
    assert!(apply(&mut target.transact_mut(), &bytes, later()).is_err());
    assert_eq!(texts(&target).0, "");
}

#[test]
fn the_fuzzers_reproducer_applies_as_it_does_whole() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions/update_shape");
    let update = std::fs::read(format!("{dir}/empty-item-naming-an-absent-client")).unwrap();
    let (plain, metered, outcome) = both_ways(&whole(&doc(9)), &update);
    assert!(outcome.finished && outcome.waiting.is_none(), "{outcome:?}");
    assert!(!texts(&plain).0.is_empty());
    assert_eq!(texts(&metered), texts(&plain));
}
