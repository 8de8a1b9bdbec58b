//! The admin commands (`tandem export`, `import`, `links`, `stats`), run as separate processes against a
//! data directory a running server is using, as an operator would.

mod common;

use common::{Peer, ServerProcess};
use std::path::Path;
use std::process::{Command, Output};
use tandem::doc_id::DocId;

fn tandem(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("RUST_LOG")
        // The key the test servers derive links under, so what is imported opens there.
        .env("TANDEM_LINK_KEY", common::TEST_LINK_KEY)
        .output()
        .expect("tandem runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_export_and_stats_work_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let markdown = dir.path().join("Meeting notes.md");
    let text = "# Agenda\n\n- budget ✓\n- \u{1F600} dates\n";
    std::fs::write(&markdown, text).unwrap();

    // Import prints the new document's link, and the running server serves it.
    let printed = stdout(&tandem(dir.path(), &["import", markdown.to_str().unwrap()]));
    let link = printed.trim();
    let id = DocId::parse(link.rsplit('/').next().unwrap()).expect("a document link");
    assert!(link.ends_with(&format!("/d/{id}")), "{link}");
    // As the page does, so the server confirms each change once it is durable.
    let url = format!("{}?client=tandem", server.ws_url(&id));
    let mut writer = Peer::join_url(&url, None).await;
    assert_eq!(writer.text(), text);
    let (title, _) = tandem::protocol::texts_of(writer.doc());
    assert_eq!(title, "Meeting notes");

    // An edit made through the server is in the export once it is confirmed durable.
    let acks = writer.acks;
    writer.insert(0, "Edited. ").await;
    writer
        .pump_until("the edit's confirmation", |p, _| p.acks > acks)
        .await;
    let exported = stdout(&tandem(dir.path(), &["export", id.as_str()]));
    assert_eq!(exported, format!("Edited. {text}"));

    let stats = stdout(&tandem(dir.path(), &["stats"]));
    assert!(stats.contains("documents: 1\n"), "{stats}");
    let bytes: u64 = stats
        .lines()
        .find_map(|line| line.strip_prefix("database bytes: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(bytes > 0);
    drop(server);
}

#[test]
fn admin_commands_refuse_bad_input_with_a_clear_error_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // No database yet: nothing is created.
    let missing = tandem(dir.path(), &["stats"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no database"));
    assert!(!dir.path().join("tandem.db").exists());

    let file = dir.path().join("a.md");
    std::fs::write(&file, "hello").unwrap();
    // Import into a fresh directory needs a database too.
    assert!(!tandem(dir.path(), &["import", file.to_str().unwrap()])
        .status
        .success());
    // Make one, as a server would on first start.
    drop(tandem::server::storage::sqlite::SqliteStore::open(dir.path(), 0).unwrap());

    for (args, says) in [
        (vec!["export", "../../etc/passwd"], "is not a document id"),
        (vec!["export", "AAAAAAAAAAAAAAAAAAAAAA"], "no document"),
        (vec!["import", "/nonexistent/file.md"], "cannot read"),
    ] {
        let output = tandem(dir.path(), &args);
        assert!(!output.status.success(), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let binary = dir.path().join("b.md");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    let output = tandem(dir.path(), &["import", binary.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("not UTF-8"));
    let big = dir.path().join("c.md");
    std::fs::write(&big, "x".repeat(2048)).unwrap();
    let output = tandem(
        dir.path(),
        &["--max-doc-bytes", "1024", "import", big.to_str().unwrap()],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("over the document limit"));
    // Nothing was created by the refusals.
    assert!(stdout(&tandem(dir.path(), &["stats"])).contains("documents: 0\n"));
}

#[test]
fn the_version_names_the_build_commit() {
    let output = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--version")
        .output()
        .unwrap();
    let version = stdout(&output);
    let expected = format!("tandem {} (", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected), "{version}");
    // A test build reads its site from disk; the release build says "site embedded".
    assert!(version.ends_with(", site read from disk)\n"), "{version}");
    let commit = version
        .trim_end()
        .trim_end_matches(", site read from disk)")
        .rsplit('(')
        .next()
        .unwrap();
    assert!(
        commit == "unknown"
            || commit
                .trim_end_matches('+')
                .chars()
                .all(|c| c.is_ascii_hexdigit()),
        "{version}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = 0;
    for line in lines.map_while(Result::ok) {
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            event["level"].is_string() && event["timestamp"].is_string(),
            "{line}"
        );
        seen += 1;
        let message = event["fields"]["message"].as_str().unwrap_or_default();
        if message.contains("listening on http://127.0.0.1:") {
            break;
        }
        assert!(seen < 50, "no listening line");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn special_files_other_schemas_and_terminal_escapes_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    drop(tandem::server::storage::sqlite::SqliteStore::open(dir.path(), 0).unwrap());
    // A device reads as empty to a size check and without end to a read.
    let output = tandem(dir.path(), &["import", "/dev/zero"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a regular file"));

    // Text strangers wrote, with terminal escapes in it (an OSC 52 clipboard write).
    let file = dir.path().join("escapes.md");
    std::fs::write(&file, "ok\u{1b}]52;c;ZXZpbA==\u{7}\n\tend").unwrap();
    let link = stdout(&tandem(dir.path(), &["import", file.to_str().unwrap()]));
    let id = link.trim().rsplit('/').next().unwrap().to_string();
    // To a file or pipe: as written.
    let piped = stdout(&tandem(dir.path(), &["export", &id]));
    assert_eq!(piped, "ok\u{1b}]52;c;ZXZpbA==\u{7}\n\tend");
    // To a terminal: escaped, newlines and tabs kept.
    let mut shown = Vec::new();
    tandem::server::admin::export(
        tandem::server::admin::Location::DataDir(dir.path()),
        &id,
        &mut shown,
        true,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(shown).unwrap(),
        "ok\\u{1b}]52;c;ZXZpbA==\\u{7}\n\tend"
    );

    // A database of another schema version is not touched.
    let db = dir.path().join("tandem.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let output = tandem(dir.path(), &["stats"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("schema version 99"));
    let version: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 99);
}

#[test]
fn admin_commands_work_on_postgres_and_backups_point_to_pg_dump() {
    let postgres = common::postgres::PgServer::start();
    let url = postgres.new_database();
    let dir = tempfile::tempdir().unwrap();
    let on_postgres = |args: &[&str]| -> Output {
        let mut all = vec!["--database-url", url.as_str()];
        all.extend_from_slice(args);
        tandem(dir.path(), &all)
    };
    // A database Tandem never served: refused, and left without a schema.
    let output = on_postgres(&["stats"]);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("schema version 0"), "{said}");

    // Serving creates the schema; then the commands work beside it.
    let store = tandem::server::storage::postgres::PostgresStore::open(&url).unwrap();
    drop(store);
    let file = dir.path().join("Plans.md");
    std::fs::write(&file, "# Plans\n\n- ship it\n").unwrap();
    let link = stdout(&on_postgres(&["import", file.to_str().unwrap()]));
    let id = link.trim().rsplit('/').next().unwrap().to_string();
    assert_eq!(
        stdout(&on_postgres(&["export", &id])),
        "# Plans\n\n- ship it\n"
    );
    let stats = stdout(&on_postgres(&["stats"]));
    assert!(stats.contains("documents: 1\n"), "{stats}");
    let output = on_postgres(&["backup", dir.path().join("copy.db").to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("pg_dump"));
    // Nothing was written to the data directory.
    assert!(std::fs::read_dir(dir.path())
        .unwrap()
        .all(|entry| entry.unwrap().file_name() == "Plans.md"));
}

/// The database URL may hold a password: no output of Tandem's shows it, whether it serves,
/// fails to reach the server, or prints its help with the URL in the environment.
#[test]
fn the_database_password_is_never_shown() {
    let marker = "Pw-7f3a9c-never-shown";
    let dir = tempfile::tempdir().unwrap();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://tandem:{marker}@127.0.0.1:{closed_port}/tandem");
    let runs = [
        vec!["--database-url", url.as_str(), "--addr", "127.0.0.1:0"],
        vec!["--database-url", url.as_str(), "stats"],
        vec!["--help"],
    ];
    for args in &runs {
        let output = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env("TANDEM_DATABASE_URL", &url)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!all.contains(marker), "{args:?}: {all}");
        if args.len() > 1 {
            assert!(!output.status.success());
            assert!(all.contains("cannot be reached"), "{args:?}: {all}");
        }
    }
}

/// `tandem links` prints the links the running server opens the document by, labelled: what
/// the Share dialog shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_prints_the_current_edit_and_view_links_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_args(dir.path(), &["--link-key", common::TEST_LINK_KEY]);
    let edit = server.new_doc();
    let mut editor = Peer::join_url(&server.ws_url(&edit), None).await;
    editor.insert(0, "shared").await;

    let printed = stdout(&tandem(dir.path(), &["links", edit.as_str()]));
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    let edit_line = lines[0].strip_prefix("edit: ").expect("labelled edit");
    assert!(edit_line.ends_with(&format!("/d/{edit}")), "{edit_line}");
    let view_link = lines[1].strip_prefix("view: ").expect("labelled view");
    let (_, view) = view_link.rsplit_once("/v/").expect("a view link");
    let view = DocId::parse(view).unwrap();
    // The view link it printed reads the document on the running server.
    let mut reader = Peer::join_url(&server.ws_url(&view), None).await;
    reader.wait_for_text("shared").await;
    // A view link is not shown the edit link.
    let output = tandem(dir.path(), &["links", view.as_str()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is a view link"));
    assert!(!String::from_utf8_lossy(&output.stdout).contains(edit.as_str()));

    // Links that open nothing, and garbage, are refused with a clear error.
    for (args, expected) in [
        (vec!["links", common::random_id().as_str()], "no document"),
        (vec!["links", "not a link"], "is not a document id"),
        (vec!["links", &"A".repeat(5000)], "is not a document id"),
    ] {
        let output = tandem(dir.path(), &args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
