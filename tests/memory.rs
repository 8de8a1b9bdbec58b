//! What one update costs the server in memory, measured on the real executable.
#![cfg(feature = "ssr")]

mod common;

use common::updates::run_of_single_characters;
use common::{status_kib, Peer, ServerProcess};
use yrs::sync::{Message, SyncMessage};

/// 20,000 characters sent as 20,000 items (140 KB) once took the server 270 MiB, quadratic in
/// their number; joined before they integrate, they cost about what their text does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_single_characters_costs_what_its_text_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let pid = server.child.id();
    let id = server.new_doc();
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
    let records = 300;
    let paste = "0123456789abcdef".repeat(256);
    let id;
    {
        let server = ServerProcess::start(dir.path());
        id = server.new_doc();
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

/// An idle connection keeps no buffer the size of what it last wrote or read. Each of 200
/// connections, one after another, receives a 32 KB document and sends it back whole (a sync
/// step 2, as a page that reconnects sends its state); then they all wait. The WebSocket layer
/// kept its write buffer at the size of the largest burst it wrote and its read buffer at the
/// size of the largest frame it read, for the connection's life: 79 KiB each here, where an
/// idle connection to an empty document costs under 9 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_keep_no_copy_of_what_they_wrote_or_read() {
    use common::raw::RawClient;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use yrs::updates::encoder::Encode;
    use yrs::{ReadTxn, Transact};

    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_args(
        dir.path(),
        &[
            "--max-connections-per-address",
            "1000",
            "--max-new-connections-per-second",
            "100000",
        ],
    );
    let pid = server.child.id();
    let id = server.new_doc();
    let mut writer = Peer::join_url(&server.ws_url(&id), None).await;
    let text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n".repeat(600);
    writer.insert(0, &text).await;
    let mut probe = Peer::join_url(&server.ws_url(&id), None).await;
    probe.wait_for_text(&text).await;
    let state = writer
        .doc()
        .transact()
        .encode_state_as_update_v1(&Default::default());
    let step1 = Message::Sync(SyncMessage::SyncStep1(Default::default())).encode_v1();
    let step2 = Message::Sync(SyncMessage::SyncStep2(state)).encode_v1();
    assert!(step2.len() > 32_000);

    let path = format!("/ws/{id}");
    // Reads frames until one is at least `at_least` bytes (the document, sent whole).
    async fn read_document(client: &mut RawClient, at_least: usize) {
        loop {
            let (_, payload) = client.read_frame().await.unwrap().expect("a frame");
            if payload.len() >= at_least {
                return;
            }
        }
    }
    let count = 200;
    let mut open = Vec::with_capacity(count);
    let before = status_kib(pid, "VmRSS");
    for _ in 0..count {
        let mut client = RawClient::connect(server.addr, &path).await;
        client
            .send_frame(OpCode::Data(Data::Binary), &step1)
            .await
            .unwrap();
        read_document(&mut client, 32_000).await;
        // Its whole state back, then a question whose answer (the document again) says the
        // state was read.
        client
            .send_frame(OpCode::Data(Data::Binary), &step2)
            .await
            .unwrap();
        client
            .send_frame(OpCode::Data(Data::Binary), &step1)
            .await
            .unwrap();
        read_document(&mut client, 32_000).await;
        open.push(client);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = status_kib(pid, "VmRSS");
    let each = after.saturating_sub(before) as f64 / count as f64;
    eprintln!("{count} idle connections after a 32 KB document each way: {each:.1} KiB each");
    assert!(each < 16.0, "each idle connection holds {each:.1} KiB");
    // Held, not dropped: every connection still answers, with the whole document.
    for client in &mut open {
        client
            .send_frame(OpCode::Data(Data::Binary), &step1)
            .await
            .unwrap();
        read_document(client, 32_000).await;
    }
    // Nothing was lost on the way: the document is as written.
    let late = Peer::join_url(&server.ws_url(&id), None).await;
    assert_eq!(late.text(), text);
    drop(open);
}
