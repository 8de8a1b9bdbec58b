//! Instructions per operation, counted by callgrind: on a shared machine wall time varies from
//! run to run, the instructions a server executes for the same work hardly do.
//!
//! Tandem runs under `valgrind --tool=callgrind` (every thread counted) while one writer sends
//! keystrokes to readers of one document in lock step: each change reaches every reader before
//! the next is sent, so every change is a commit and a frame of its own, the unbatched case and
//! the costliest per delivery. Counting starts once everyone has joined and stops when the last
//! change has reached everyone (`callgrind_control --zero` and `--dump`), so a run costs
//! `updates × (apply + readers × deliver)`; two runs, with `readers` and twice as many,
//! separate the terms:
//!
//! - deliver = (I(2r) − I(r)) / (updates × r)
//! - apply = I(r) / updates − r × deliver
//!
//! `LOAD_COUNTS_KEEP=DIR` keeps both dumps there, for `callgrind_annotate`.
//!
//! "apply" is everything the server does for one change besides sending it to each reader:
//! reading and checking the frame, integrating it, storing it (SQLite), publishing it.

use crate::client;
use crate::target::Target;
use futures_util::{SinkExt, StreamExt};
use std::process::Command;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Instructions per operation.
pub struct Counts {
    pub per_delivery: f64,
    pub per_update: f64,
}

/// `None` (with the reason printed) when valgrind is not installed.
pub async fn counts(updates: u64, readers: usize) -> Option<Counts> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("  valgrind is not installed; instruction counts skipped");
        return None;
    }
    let (u, r) = (updates as f64, readers as f64);
    let some = total(updates, readers).await? as f64;
    let more = total(updates, 2 * readers).await? as f64;
    let per_delivery = (more - some) / (u * r);
    let per_update = some / u - r * per_delivery;
    Some(Counts {
        per_delivery,
        per_update,
    })
}

/// Instructions Tandem executed for `updates` keystrokes to `readers` readers, from the first
/// keystroke sent to the last one received.
async fn total(updates: u64, readers: usize) -> Option<u64> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("callgrind.out");
    let target = Target::tandem_under(&[
        "valgrind".into(),
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}", out.display()),
    ]);
    let doc = target.new_doc();
    let mut watching = Vec::with_capacity(readers);
    for _ in 0..readers {
        watching.push(client::join(&target.url(&doc, false)).await.0);
    }
    let (mut writer, replica) = client::join(&target.url(&doc, false)).await;
    control(target.pid(), "--zero")?;
    for _ in 0..updates {
        writer
            .send(WsMessage::Binary(client::keystroke(&replica).into()))
            .await
            .unwrap();
        for reader in &mut watching {
            next_update(reader).await;
        }
    }
    control(target.pid(), "--dump=measured")?;
    for mut socket in watching.into_iter().chain([writer]) {
        let _ = socket.close(None).await;
    }
    target.stop();
    // The dump asked for, beside the one written at exit.
    let (path, dump) = std::fs::read_dir(dir.path())
        .ok()?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let text = std::fs::read_to_string(&path).ok()?;
            Some((path, text))
        })
        .find(|(_, text)| text.contains("measured"))?;
    if let Ok(keep) = std::env::var("LOAD_COUNTS_KEEP") {
        let kept = std::path::Path::new(&keep).join(format!("callgrind.{readers}-readers.out"));
        match std::fs::copy(&path, &kept) {
            Ok(_) => println!("  kept for callgrind_annotate: {}", kept.display()),
            Err(e) => println!("  could not keep {}: {e}", kept.display()),
        }
    }
    let total = dump.lines().find_map(|line| {
        line.strip_prefix("summary:")
            .or_else(|| line.strip_prefix("totals:"))
            .and_then(|n| n.split_whitespace().next()?.parse().ok())
    });
    if total.is_none() {
        println!("  callgrind's dump holds no total");
    }
    total
}

/// Runs `callgrind_control ACTION PID`; `None` (with why) if it failed.
fn control(pid: u32, action: &str) -> Option<()> {
    let done = Command::new("callgrind_control")
        .arg(action)
        .arg(pid.to_string())
        .output();
    match done {
        Ok(output) if output.status.success() => Some(()),
        other => {
            println!("  callgrind_control {action} failed: {other:?}");
            None
        }
    }
}

/// Reads `reader` until a frame carrying a change arrives.
async fn next_update(reader: &mut client::Socket) {
    loop {
        match tokio::time::timeout(Duration::from_secs(120), reader.next()).await {
            Ok(Some(Ok(WsMessage::Binary(frame)))) if frame.starts_with(&[0, 2]) => return,
            Ok(Some(Ok(_))) => continue,
            other => panic!("a reader stopped receiving: {other:?}"),
        }
    }
}
