//! The servers under load: Tandem's release build, and the reference Yjs server
//! (`@y/websocket-server`, Node) for comparison, each started on a free loopback port with a
//! fresh data directory and stopped when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server a [`Target`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tandem,
    YWebsocket,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tandem => "Tandem",
            Kind::YWebsocket => "y-websocket",
        }
    }
}

/// A running server.
pub struct Target {
    pub kind: Kind,
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Target {
    /// Tandem with its limits for one address raised: the whole load comes from loopback.
    pub fn tandem() -> Target {
        Target::tandem_under(&[])
    }

    /// Tandem run by `wrapper` (a tool and its arguments, before the executable), if any.
    pub fn tandem_under(wrapper: &[String]) -> Target {
        let dir = tempfile::tempdir().unwrap();
        let bin = env!("CARGO_BIN_EXE_tandem");
        let mut command = match wrapper.split_first() {
            Some((tool, args)) => {
                let mut command = Command::new(tool);
                command.args(args).arg(bin);
                command
            }
            None => Command::new(bin),
        };
        let mut child = command
            .args(["--addr", "127.0.0.1:0"])
            .args(["--max-connections", "30000"])
            .args(["--max-connections-per-address", "30000"])
            .args(["--max-new-connections-per-second", "1000000"])
            .args(["--max-new-documents-per-minute", "1000000"])
            .args(["--max-messages-per-second", "1000000"])
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn,tandem::server=info")
            .stdout(Stdio::piped())
            .spawn()
            .expect("tandem starts");
        let addr = listening_address(&mut child);
        Target {
            kind: Kind::Tandem,
            child,
            addr,
            _dir: dir,
        }
    }

    /// The reference server, installed from `benches/load/y-websocket/package-lock.json` on
    /// first use; `None` (with the reason printed) when Node or npm is missing.
    pub fn y_websocket() -> Option<Target> {
        let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/load/y-websocket");
        let server = package.join("node_modules/@y/websocket-server/src/server.js");
        if !server.exists() {
            let installed = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--silent"])
                .current_dir(&package)
                .status();
            if !matches!(installed, Ok(status) if status.success()) {
                println!("y-websocket: could not be installed with npm ({installed:?}); skipped");
                return None;
            }
        }
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("node")
            .arg(&server)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            println!("y-websocket: node did not start; skipped");
            return None;
        };
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "y-websocket did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Target {
            kind: Kind::YWebsocket,
            child,
            addr,
            _dir: dir,
        })
    }

    /// A new document's name on this server. Tandem makes documents through `GET /new` (only
    /// links it made open anything); y-websocket makes one for any name.
    pub fn new_doc(&self) -> String {
        match self.kind {
            Kind::Tandem => tandem_new_doc(&self.addr),
            Kind::YWebsocket => format!("bench-{:016x}", rand_u64()),
        }
    }

    /// The WebSocket address of `doc`. `saved` asks Tandem to confirm each durable change.
    pub fn url(&self, doc: &str, saved: bool) -> String {
        let path = self.path(doc);
        match (self.kind, saved) {
            (Kind::Tandem, true) => format!("ws://{}{path}?client=tandem", self.addr),
            _ => format!("ws://{}{path}", self.addr),
        }
    }

    /// The path of `doc`'s WebSocket.
    pub fn path(&self, doc: &str) -> String {
        match self.kind {
            Kind::Tandem => format!("/ws/{doc}"),
            Kind::YWebsocket => format!("/{doc}"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// User plus system CPU time so far.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
    }
}

impl Target {
    /// Stops the server as an operator would (SIGTERM) and waits up to `patience` for it to
    /// exit (a server under valgrind writes its figures then); true if it did.
    fn terminate(&mut self, patience: Duration) -> bool {
        use rustix::process::{kill_process, Pid, Signal};
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            let _ = kill_process(pid, Signal::TERM);
        }
        let started = Instant::now();
        while started.elapsed() < patience {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Stops the server gracefully, waiting as long as a server under valgrind may need.
    pub fn stop(mut self) {
        if !self.terminate(Duration::from_secs(120)) {
            println!("the server did not stop within 120 s of SIGTERM; killed");
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if !self.terminate(Duration::from_secs(30)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Resident memory of process `pid` in KiB, from /proc (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn listening_address(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find("listening on http://") {
                let addr = line[at + 20..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if let Some(tx) = tx.take() {
                    let _ = tx.send(addr);
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("server address")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}

/// A fresh document's edit link, made as a browser makes one: `GET /new`, and the link it
/// redirects to.
fn tandem_new_doc(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the server accepts");
    write!(
        stream,
        "GET /new HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("location").then(|| value.trim())
        })
        .and_then(|location| location.strip_prefix("/d/"))
        .unwrap_or_else(|| panic!("/new redirects to an edit link: {answer}"))
        .to_string()
}
