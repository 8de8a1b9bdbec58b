//! What one update costs the server in time, on the real executable: updates built to make yrs
//! work for minutes are cut off at the time limit, keeping what went in; real histories are
//! not.
#![cfg(feature = "ssr")]

mod common;

use common::updates::{conflicting_update, inserts_right_to_left};
use common::{Peer, ServerProcess};
use yrs::sync::{Message, SyncMessage};
use yrs::{ReadTxn, Transact};

/// Items of the conflicting update the server keeps, read from what a reader in the room
/// receives once the base text of `n` characters has arrived.
async fn kept_items(reader: &mut Peer, n: u32) -> usize {
    let base = "x".repeat(n as usize);
    reader
        .pump_until("the part that went in", |p, _| p.text().contains(&base))
        .await;
    reader.text().matches('y').count()
}

/// 30,000 items each passing over all those before: whole, about two minutes of work. The
/// sender is closed with 1008 once the time limit is reached; what went in by then is stored
/// and broadcast, and everyone else goes on writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_slower_than_the_time_limit_is_cut_off_and_what_went_in_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let id = server.new_doc();
    let url = server.ws_url(&id);
    let mut writer = Peer::join_url(&url, None).await;
    let mut reader = Peer::join_url(&url, None).await;
    let mut attacker = Peer::join_url(&url, None).await;
    let n = 30_000;
    attacker
        .send(Message::Sync(SyncMessage::Update(conflicting_update(n, 1))))
        .await;
    assert_eq!(attacker.expect_close().await, 1008);
    let kept = kept_items(&mut reader, n).await;
    assert!(kept < n as usize, "all {n} items went in");
    // The room still works, and what went in was stored.
    writer.wait_for_text(&reader.text()).await;
    writer.insert(0, "still here ").await;
    let expected = format!("still here {}", reader.text());
    reader.wait_for_text(&expected).await;
    let late = Peer::join_url(&url, None).await;
    assert_eq!(late.text(), expected);
}

/// 200,000 single characters placed right to left inside a 1 MB paste (a 2.4 MB update): each
/// costs yrs a walk over the paste, about 80 s in all. Cut off at the time limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_that_each_walk_a_long_paste_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let id = server.new_doc();
    let url = server.ws_url(&id);
    let mut writer = Peer::join_url(&url, Some(7)).await;
    let paste = "0123456789abcdef".repeat(65_536);
    writer.insert(0, &paste).await;
    let mut attacker = Peer::join_url(&url, None).await;
    attacker.wait_for_text(&paste).await;
    let m = 200_000;
    let update = inserts_right_to_left(8, 7, paste.len() as u32, m);
    attacker
        .send(Message::Sync(SyncMessage::Update(update)))
        .await;
    assert_eq!(attacker.expect_close().await, 1008);
    let mut reader = Peer::join_url(&url, None).await;
    let kept = reader.text();
    assert!(
        kept.matches('y').count() < m as usize,
        "all {m} inserts went in"
    );
    writer.insert(0, "!").await;
    reader.wait_for_text(&format!("!{kept}")).await;
}

/// While such updates are being integrated in two documents (as many as the server has
/// runtime workers), a third document still works: integration runs off the runtime's workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_integrations_do_not_stop_other_documents() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let id = server.new_doc();
    let mut writer = Peer::join_url(&server.ws_url(&id), None).await;
    let mut reader = Peer::join_url(&server.ws_url(&id), None).await;
    let mut attackers = Vec::new();
    for _ in 0..2 {
        attackers.push(Peer::join_url(&server.ws_url(&server.new_doc()), None).await);
    }
    for attacker in &mut attackers {
        attacker
            .send(Message::Sync(SyncMessage::Update(conflicting_update(
                30_000, 1,
            ))))
            .await;
    }
    writer.insert(0, "still here").await;
    reader.wait_for_text("still here").await;
    for attacker in &mut attackers {
        assert_eq!(attacker.expect_close().await, 1008);
    }
}

/// A real history, the 259,778 edits of the automerge paper typed offline, reaches the server
/// as one sync step 2 when the writer connects: it integrates whole, well within the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_offline_history_integrates_whole() {
    let trace = common::trace::load("automerge-paper.json.gz");
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let id = server.new_doc();
    let url = server.ws_url(&id);
    let offline = tandem::protocol::new_doc();
    common::trace::replay(&trace, &offline, tandem::protocol::CONTENT, |_| {});
    let history = offline
        .transact()
        .encode_state_as_update_v1(&Default::default());
    let mut writer = Peer::join_url(&url, None).await;
    writer
        .send(Message::Sync(SyncMessage::Update(history)))
        .await;
    let mut reader = Peer::join_url(&url, None).await;
    reader.wait_for_text(&trace.end_content).await;
    let sv = offline.transact().state_vector();
    assert_eq!(reader.doc().transact().state_vector(), sv);
}

/// The same with a time limit long enough for the slow updates to run whole (about 17 s each),
/// and with people in the slowed documents moving their carets meanwhile: their presence waits
/// for the document, but not on the runtime's workers, so a third document still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_waiting_for_a_slow_document_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_args(dir.path(), &["--max-integration-ms", "60000"]);
    let id = server.new_doc();
    let mut writer = Peer::join_url(&server.ws_url(&id), None).await;
    let mut reader = Peer::join_url(&server.ws_url(&id), None).await;
    let mut slowed = Vec::new();
    for _ in 0..2 {
        let slow = server.new_doc();
        let mut attacker = Peer::join_url(&server.ws_url(&slow), None).await;
        let bystander = Peer::join_url(&server.ws_url(&slow), None).await;
        attacker
            .send(Message::Sync(SyncMessage::Update(conflicting_update(
                12_000, 1,
            ))))
            .await;
        slowed.push((attacker, bystander));
    }
    // Nothing tells from outside when an integration has begun; a second is ample for a
    // message to reach a room, and each takes about 17 s.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    // More presence frames than the server has workers, each waiting for a slowed document.
    for round in 0..2 {
        for (_, bystander) in &mut slowed {
            bystander
                .set_presence(&format!(r#"{{"user":{{"name":"B{round}"}}}}"#))
                .await;
        }
    }
    writer.insert(0, "still here").await;
    reader.wait_for_text("still here").await;
    drop(slowed);
}
