//! Document ids are keys: the real binary, logging at its most verbose, never writes one.
#![cfg(feature = "ssr")]

mod common;
mod net;

use common::{Peer, PATIENCE};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Runs `tandem` with `RUST_LOG=trace`; every line it prints is kept.
struct LoggedServer {
    child: std::process::Child,
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl LoggedServer {
    fn start(data_dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "trace")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tandem starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (found, wait) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                let errors = {
                    let lines = lines.clone();
                    std::thread::spawn(move || {
                        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                            lines.lock().unwrap().push(line);
                        }
                    })
                };
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(at) = line.find("listening on http://") {
                        let addr = line[at + "listening on http://".len()..]
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string();
                        let _ = found.send(addr);
                    }
                    lines.lock().unwrap().push(line);
                }
                let _ = errors.join();
            })
        };
        let addr = wait
            .recv_timeout(PATIENCE)
            .expect("the server announces its address")
            .parse()
            .unwrap();
        LoggedServer {
            child,
            addr,
            lines,
            reader: Some(reader),
        }
    }

    /// Stops the server with SIGTERM and returns everything it logged.
    fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the server exits cleanly");
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `doc=` tags on the lines of requests to `route`.
fn tags_on(lines: &[String], route: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|line| line.contains(&format!("route={route}")))
        .filter_map(|line| {
            let at = line.find(" doc=")? + " doc=".len();
            Some(
                line[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_hexdigit())
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn document_ids_never_reach_the_logs() {
    let _turn = common::ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = LoggedServer::start(dir.path());
    let id = common::new_doc_at(server.addr);
    let ws = format!("ws://{}/ws/{id}", server.addr);

    // Open the page, edit through two sockets (one the page's own kind, with acknowledgements),
    // and stumble over the id in every malformed way a link can be.
    let page = net::get(server.addr, &format!("/d/{id}")).await;
    assert_eq!(page.status, 200);
    let mut writer = Peer::join_url(&format!("{ws}?client=tandem"), None).await;
    let mut reader = Peer::join_url(&ws, None).await;
    writer.insert(0, "a secret plan").await;
    reader.wait_for_text("a secret plan").await;
    for path in [
        format!("/d/{id}x"),
        format!("/ws/{id}x"),
        format!("/nowhere/{id}"),
        format!("/d/{id}/"),
    ] {
        let response = net::get(server.addr, &path).await;
        assert!(response.status.is_client_error(), "{path}");
    }
    let again = net::get(server.addr, &format!("/d/{id}")).await;
    assert!(again.body.contains("a secret plan"));
    writer.close().await;
    reader.close().await;

    let lines = server.stop();
    assert!(
        lines.iter().any(|l| l.contains("route=/d/{id}")),
        "requests are traced: {lines:#?}"
    );
    let leaks: Vec<&String> = lines.iter().filter(|l| l.contains(id.as_str())).collect();
    assert!(leaks.is_empty(), "the id {id} was logged:\n{leaks:#?}");

    // The document is still followed under one tag, the same for its page and its socket.
    let page_tags = tags_on(&lines, "/d/{id}");
    let socket_tags = tags_on(&lines, "/ws/{id}");
    assert!(
        !page_tags.is_empty() && !socket_tags.is_empty(),
        "{lines:#?}"
    );
    let tag = &page_tags[0];
    assert_eq!(tag.len(), 12, "{tag}");
    assert!(
        page_tags.iter().chain(&socket_tags).all(|t| t == tag),
        "{page_tags:?} {socket_tags:?}"
    );
}
