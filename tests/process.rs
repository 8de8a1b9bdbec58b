//! The real executable: restarts, crashes, shutdown and backups.
#![cfg(feature = "ssr")]

mod common;

use common::{Peer, ServerProcess, PATIENCE};
use futures_util::StreamExt;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use tandem::server::storage::sqlite::{SqliteStore, DB_FILE};
use tandem::server::storage::DocStore;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, StateVector, Transact, Update};

#[tokio::test]
async fn text_survives_a_graceful_restart_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let text = "# Notes\n\nUnicode: héllo, 日本語, emoji 😀 and a\ttab.\r\nLast line";

    let server = ServerProcess::start(dir.path());
    let id = server.new_doc();
    let mut writer = Peer::join_url(&server.ws_url(&id), None).await;
    writer.insert(0, text).await;
    let mut reader = Peer::join_url(&server.ws_url(&id), None).await;
    reader.wait_for_text(text).await;

    // SIGTERM: connected clients are told the server is going away, and it exits in time.
    let terminated = tokio::task::spawn_blocking(move || server.terminate());
    let code = writer.expect_close().await;
    assert_eq!(code, 1001, "going away");
    let (took, ok) = terminated.await.unwrap();
    assert!(ok, "clean exit");
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");

    let server = ServerProcess::start(dir.path());
    let after = Peer::join_url(&server.ws_url(&id), None).await;
    assert_eq!(after.text(), text);
}

/// Five clients stream edits; the server is killed with SIGKILL at a random moment. Every
/// update any client received from the server must be in the document after a restart, and
/// the clients, reconnecting, converge with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_anyone_saw_is_lost_in_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    crash_and_check(|| ServerProcess::start(dir.path())).await;
}

/// The same on PostgreSQL: what was confirmed is committed there before anyone hears of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_anyone_saw_is_lost_in_a_crash_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = common::postgres::PgServer::start();
    let database = postgres.new_database();
    crash_and_check(|| ServerProcess::start_with_args(dir.path(), &["--database-url", &database]))
        .await;
    // The data directory was never used.
    assert!(!dir.path().join(DB_FILE).exists());
}

/// Five writers, a SIGKILL at a random moment, a restart by `start`, and the checks above.
async fn crash_and_check(start: impl Fn() -> ServerProcess) {
    let server = start();
    let id = server.new_doc();
    let url = server.ws_url(&id);

    let mut writers = Vec::new();
    for n in 0..5u64 {
        let url = url.clone();
        writers.push(tokio::spawn(async move {
            let mut peer = Peer::join_url(&url, None).await;
            let mut rng = rand::rngs::StdRng::seed_from_u64(n);
            // Bounded: at most 2,000 edits or until the connection dies.
            for i in 0..2_000u32 {
                let len = peer.text().encode_utf16().count() as u32;
                let at = rng.random_range(0..=len);
                let update = if len > 10 && i % 5 == 4 {
                    peer.edit(at.min(len - 3), 2, "")
                } else {
                    peer.edit(at, 0, &char::from(b'a' + n as u8).to_string())
                };
                let frame =
                    yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(update)).encode_v1();
                if futures_util::SinkExt::send(&mut peer.ws, WsMessage::Binary(frame.into()))
                    .await
                    .is_err()
                {
                    break;
                }
                // Read whatever has arrived, without waiting long.
                let mut alive = true;
                while let Ok(next) =
                    tokio::time::timeout(Duration::from_millis(2), peer.ws.next()).await
                {
                    match next {
                        Some(Ok(WsMessage::Binary(frame))) => peer.handle_frame(&frame).await,
                        Some(Ok(_)) => {}
                        _ => {
                            alive = false;
                            break;
                        }
                    }
                }
                if !alive {
                    break;
                }
            }
            peer
        }));
    }

    let delay = rand::rng().random_range(300..1200);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();
    let mut peers = Vec::new();
    for writer in writers {
        peers.push(
            tokio::time::timeout(PATIENCE * 3, writer)
                .await
                .expect("writers stop")
                .unwrap(),
        );
    }
    let received: usize = peers.iter().map(|p| p.received.len()).sum();
    assert!(
        received > 0,
        "the crash came before anyone received anything; nothing was tested"
    );

    let server = start();
    let url = server.ws_url(&id);
    let observer = Peer::join_url(&url, None).await;
    let stored_sv = observer.doc().transact().state_vector();
    let stored_text = observer.text();
    for peer in &peers {
        // Everything this peer received from the server, merged.
        let seen = tandem::protocol::new_doc();
        {
            let mut txn = seen.transact_mut();
            for update in &peer.received {
                txn.apply_update(Update::decode_v1(update).unwrap())
                    .unwrap();
            }
        }
        // Adding it to the restarted server's state must change nothing.
        let check = tandem::protocol::new_doc();
        {
            let mut txn = check.transact_mut();
            let stored = observer
                .doc()
                .transact()
                .encode_state_as_update_v1(&StateVector::default());
            txn.apply_update(Update::decode_v1(&stored).unwrap())
                .unwrap();
            let missing = seen.transact().encode_state_as_update_v1(&stored_sv);
            txn.apply_update(Update::decode_v1(&missing).unwrap())
                .unwrap();
        }
        assert_eq!(
            check.transact().state_vector(),
            stored_sv,
            "an update a client had seen was lost"
        );
        assert_eq!(
            tandem::protocol::texts_of(&check).1,
            stored_text,
            "a deletion a client had seen was lost"
        );
    }

    // The clients come back with their replicas and converge with the server.
    for peer in &mut peers {
        peer.reconnect(&url).await;
    }
    let mut observer = observer;
    let expected = {
        let mut merged = peers[0].text();
        for _ in 0..50 {
            for peer in &mut peers {
                let _ = tokio::time::timeout(Duration::from_millis(20), async {
                    if let Some(Ok(WsMessage::Binary(frame))) = peer.ws.next().await {
                        peer.handle_frame(&frame).await;
                    }
                })
                .await;
            }
            merged = peers[0].text();
            if peers.iter().all(|p| p.text() == merged) {
                break;
            }
        }
        merged
    };
    for peer in &peers {
        assert_eq!(peer.text(), expected, "clients converge");
    }
    observer.wait_for_text(&expected).await;
}

#[tokio::test]
async fn backup_copies_a_running_servers_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let id = server.new_doc();
    let mut peer = Peer::join_url(&server.ws_url(&id), None).await;
    peer.insert(0, "worth keeping").await;
    let mut check = Peer::join_url(&server.ws_url(&id), None).await;
    check.wait_for_text("worth keeping").await;

    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join(DB_FILE);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("backup")
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let restored = SqliteStore::open(copy_dir.path(), 0).unwrap();
    let internal = restored
        .resolve(&tandem::server::capability::token_hash(&id))
        .unwrap()
        .expect("the link is in the backup")
        .doc;
    let stored = restored
        .load(&internal)
        .unwrap()
        .expect("the document is in the backup");
    let doc = tandem::protocol::new_doc();
    {
        let mut txn = doc.transact_mut();
        for update in stored.snapshot.iter().chain(&stored.updates) {
            txn.apply_update(Update::decode_v1(update).unwrap())
                .unwrap();
        }
    }
    assert_eq!(tandem::protocol::texts_of(&doc).1, "worth keeping");

    // It refuses to overwrite.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("backup")
        .arg(&copy)
        .status()
        .unwrap();
    assert!(!again.success());
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn backup_to(data_dir: &std::path::Path, file: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("backup")
        .arg(file)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_data_directory_database_and_backups_are_private() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    let server = ServerProcess::start(&data_dir);
    let id = server.new_doc();
    let mut peer = Peer::join_url(&server.ws_url(&id), None).await;
    peer.insert(0, "private").await;
    let mut check = Peer::join_url(&server.ws_url(&id), None).await;
    check.wait_for_text("private").await;

    assert_eq!(mode(&data_dir), 0o700, "data directory");
    for file in [DB_FILE, "tandem.db-wal", "tandem.db-shm"] {
        assert_eq!(mode(&data_dir.join(file)), 0o600, "{file}");
    }

    let backups = tempfile::tempdir().unwrap();
    let copy = backups.path().join("copy.db");
    let output = backup_to(&data_dir, &copy);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(mode(&copy), 0o600, "backup");
    assert!(std::fs::metadata(&copy).unwrap().len() > 0);
}

#[tokio::test]
async fn backup_refuses_existing_files_and_symbolic_links() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let id = server.new_doc();
    let mut peer = Peer::join_url(&server.ws_url(&id), None).await;
    peer.insert(0, "secret").await;
    let mut check = Peer::join_url(&server.ws_url(&id), None).await;
    check.wait_for_text("secret").await;

    let place = tempfile::tempdir().unwrap();
    let existing = place.path().join("existing");
    std::fs::write(&existing, "someone else's file").unwrap();
    let dangling = place.path().join("dangling");
    let dangling_target = place.path().join("not-there-yet");
    std::os::unix::fs::symlink(&dangling_target, &dangling).unwrap();
    let link = place.path().join("link");
    std::os::unix::fs::symlink(&existing, &link).unwrap();

    for target in [&existing, &dangling, &link] {
        let output = backup_to(dir.path(), target);
        assert!(!output.status.success(), "{}", target.display());
        // Said plainly on standard error, as every command's failure is.
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(
            said.starts_with("tandem: ") && said.contains("already exists"),
            "{said}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&existing).unwrap(),
        "someone else's file"
    );
    assert!(
        std::fs::symlink_metadata(&dangling_target).is_err(),
        "nothing was written through the dangling link"
    );
    assert!(std::fs::symlink_metadata(&dangling)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}
