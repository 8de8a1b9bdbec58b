//! What one update costs the server in memory, measured on the real executable.
#![cfg(feature = "ssr")]

mod common;

use common::updates::run_of_single_characters;
use common::{random_id, status_kib, Peer, ServerProcess};
use yrs::block::{ClientID, ID};
use yrs::encoding::write::Write;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::encoder::{Encoder, EncoderV1};

/// 20,000 characters sent as 20,000 items (140 KB) once took the server 270 MiB, quadratic in
/// their number; joined before they integrate, they cost about what their text does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_single_characters_costs_what_its_text_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let pid = server.child.id();
    let id = random_id();
    let mut writer = Peer::join_url(&server.ws_url(&id), None).await;
    let mut reader = Peer::join_url(&server.ws_url(&id), None).await;
    let (update, text) = run_of_single_characters(4242, 20_000);
    let peak_before = status_kib(pid, "VmHWM");
    writer
        .send(Message::Sync(SyncMessage::Update(update.clone())))
        .await;
    reader.wait_for_text(&text).await;
    let peak_after = status_kib(pid, "VmHWM");
    eprintln!(
        "a {} byte update of {} items: peak resident memory {} KiB before, {} KiB after",
        update.len(),
        text.len(),
        peak_before,
        peak_after
    );
    let grew_mib = peak_after.saturating_sub(peak_before) / 1024;
    assert!(grew_mib < 24, "peak resident memory grew by {grew_mib} MiB");
    // Everyone else in the room, and whoever joins later, reads the same text.
    assert_eq!(writer.text(), "");
    let late = Peer::join_url(&server.ws_url(&id), None).await;
    assert_eq!(late.text(), text);
}

/// A log of updates each continuing the text of the one before (text written at the end, a
/// paste at a time) is reloaded record by record: in one transaction yrs joined the whole log's
/// runs at commit, copying text quadratically (300 records of 4 KB took 180 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_a_log_of_continuing_pastes_costs_what_its_text_does() {
    let dir = tempfile::tempdir().unwrap();
    let id = random_id();
    let records = 300;
    let paste = "0123456789abcdef".repeat(256);
    {
        let server = ServerProcess::start(dir.path());
        // A Tandem client, told when each change is stored.
        let url = format!("{}?client=tandem", server.ws_url(&id));
        let mut writer = Peer::join_url(&url, None).await;
        for i in 0..records {
            writer.insert(i * paste.len() as u32, &paste).await;
        }
        writer
            .pump_until("every paste stored", |p, _| p.acks > records as usize)
            .await;
        // Killed with the writer still there: nothing compacts the log on the way out.
        server.kill();
    }
    let server = ServerProcess::start(dir.path());
    let pid = server.child.id();
    let peak_before = status_kib(pid, "VmHWM");
    let reader = Peer::join_url(&server.ws_url(&id), None).await;
    let peak_after = status_kib(pid, "VmHWM");
    assert_eq!(reader.text().len(), records as usize * paste.len());
    eprintln!("reloading {records} records of {} bytes: peak resident memory {peak_before} KiB before, {peak_after} KiB after", paste.len());
    let grew_mib = peak_after.saturating_sub(peak_before) / 1024;
    assert!(grew_mib < 32, "peak resident memory grew by {grew_mib} MiB");
}

/// An update built to make yrs's conflict resolution walk the text again for every item:
/// `n` one-character items of client `clients + 1`, each placed after a character further left
/// in client `clients`'s text of `n` characters and with nothing to its right, so each scans to the end of the
/// text. Its cost is quadratic in `n` (2,000 items take about half a second in a release build).
fn conflicting_update(n: u32, clients: u64) -> Vec<u8> {
    use yrs::block::BLOCK_ITEM_STRING_REF_NUMBER as STRING;
    let (base, other) = (ClientID::new(clients), ClientID::new(clients + 1));
    let mut encoder = EncoderV1::new();
    encoder.write_var(2u32);
    // Higher clients first, as yrs writes them.
    encoder.write_var(n);
    encoder.write_client(other);
    encoder.write_var(0u32);
    for t in 0..n {
        encoder.write_info(STRING | 0b1000_0000);
        encoder.write_left_id(&ID::new(base, n - 1 - t));
        encoder.write_string("y");
    }
    encoder.write_var(1u32);
    encoder.write_client(base);
    encoder.write_var(0u32);
    encoder.write_info(STRING);
    encoder.write_parent_info(true);
    encoder.write_string(tandem::protocol::CONTENT);
    encoder.write_string(&"x".repeat(n as usize));
    encoder.write_var(0u32);
    encoder.to_vec()
}

/// While such updates are being integrated in two documents (as many as the server has
/// runtime workers), a third document still works: integration runs off the runtime's workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_integrations_do_not_stop_other_documents() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let id = random_id();
    let mut writer = Peer::join_url(&server.ws_url(&id), None).await;
    let mut reader = Peer::join_url(&server.ws_url(&id), None).await;
    let mut attackers = Vec::new();
    for _ in 0..2 {
        attackers.push(Peer::join_url(&server.ws_url(&random_id()), None).await);
    }
    for attacker in &mut attackers {
        attacker
            .send(Message::Sync(SyncMessage::Update(conflicting_update(
                12_000, 1,
            ))))
            .await;
    }
    writer.insert(0, "still here").await;
    reader.wait_for_text("still here").await;
    drop(attackers);
}

/// The time an update takes to integrate counts against its sender's message rate: a client
/// that sends such slow updates one after another is closed with 1008.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_of_slow_updates_is_closed_for_flooding() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let mut attacker = Peer::join_url(&server.ws_url(&random_id()), None).await;
    // Each takes well over six seconds to integrate (about 17 s on a 2-core machine), more than
    // the burst of 600 messages' worth at one per 10 ms: the first uses up the allowance, and
    // the next, sent at once, finds it empty.
    for round in 0..3 {
        let update = conflicting_update(12_000, 10 + 2 * round);
        attacker
            .send(Message::Sync(SyncMessage::Update(update)))
            .await;
    }
    // Bounded: the first update takes its time before anything is decided.
    let code = tokio::time::timeout(std::time::Duration::from_secs(90), async {
        loop {
            use futures_util::StreamExt;
            match attacker.ws.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                    return frame.map(|f| u16::from(f.code));
                }
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(code, Some(1008));
}
