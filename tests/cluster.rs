//! Several instances on one PostgreSQL and one Redis, all real servers on loopback: what one
//! instance's editors write reaches the others' editors, whatever Redis does, and nothing is
//! lost when an instance is killed.

mod common;

use common::postgres::PgServer;
use common::redis::RedisServer;
use common::{Peer, ServerProcess, TestServer, PATIENCE};
use futures_util::StreamExt;
use std::time::Duration;
use tandem::doc_id::DocId;
use tandem::server::capability::{token_hash, Role};
use tandem::server::storage::capabilities::NewLink;
use tandem::server::storage::postgres::PostgresStore;
use tandem::server::storage::DocStore;
use yrs::sync::Message;
use yrs::updates::encoder::Encode;

/// Far more than the store takes to bring a change Redis lost (a poll and half a second).
const HEAL: Duration = Duration::from_secs(10);

struct Cluster {
    pg: PgServer,
    database: String,
    redis: RedisServer,
}

impl Cluster {
    fn start() -> Cluster {
        let pg = PgServer::start();
        let database = pg.new_database();
        Cluster {
            pg,
            database,
            redis: RedisServer::start(),
        }
    }

    async fn instance(&self) -> TestServer {
        self.instance_with(false).await
    }

    async fn instance_with(&self, drop_half: bool) -> TestServer {
        let (database, redis) = (self.database.clone(), self.redis.url());
        TestServer::start_with(move |config| {
            config.database_url = Some(database);
            config.link_key = Some(common::TEST_LINK_KEY.into());
            config.redis_url = Some(redis);
            config.test_redis_drop_half = drop_half;
        })
        .await
    }

    fn process(&self, data_dir: &std::path::Path) -> ServerProcess {
        ServerProcess::start_with_args(
            data_dir,
            &[
                "--database-url",
                &self.database,
                "--redis-url",
                &self.redis.url(),
            ],
        )
    }

    /// The text stored for the document the link `id` opens.
    fn stored_text(&self, id: &DocId) -> String {
        let store = PostgresStore::open(&self.database).unwrap();
        let doc = store
            .resolve(&token_hash(id))
            .unwrap()
            .expect("the link opens a document")
            .doc;
        let stored = store.load(&doc).unwrap().expect("the document is stored");
        tandem::protocol::texts_of(&stored.replica().unwrap()).1
    }
}

/// Waits until `peer`'s text is `expected`, for up to `patience`.
async fn text_within(peer: &mut Peer, patience: Duration, expected: &str) {
    let wanted = expected.to_string();
    peer.pump_within(patience, &format!("text {expected:?}"), move |p, _| {
        p.text() == wanted
    })
    .await;
}

/// Appends `chunk` at the end of what `peer` sees.
async fn append(peer: &mut Peer, chunk: &str) {
    let end = peer.text().encode_utf16().count() as u32;
    peer.insert(end, chunk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn editors_on_two_instances_see_each_others_changes_and_presence() {
    let cluster = Cluster::start();
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let id = a.new_doc().await;
    let mut on_a = Peer::join_as(&a, &id, Some(101)).await;
    let mut on_b = Peer::join_as(&b, &id, Some(202)).await;

    append(&mut on_a, "written on A. ").await;
    text_within(&mut on_b, common::PATIENCE, "written on A. ").await;
    append(&mut on_b, "Then on B.").await;
    text_within(&mut on_a, common::PATIENCE, "written on A. Then on B.").await;

    // Typing on both at once converges to one text on both.
    for i in 0..20 {
        append(&mut on_a, &format!("a{i} ")).await;
        append(&mut on_b, &format!("b{i} ")).await;
    }
    let done = |p: &Peer, _: Option<&Message>| {
        let text = p.text();
        (0..20).all(|i| text.contains(&format!("a{i} ")) && text.contains(&format!("b{i} ")))
    };
    on_a.pump_until("everything on A", done).await;
    on_b.pump_until("everything on B", done).await;
    assert_eq!(on_a.text(), on_b.text());

    // Presence set on A shows on B, renewed or changed states too; leaving removes it there.
    on_a.set_presence(r#"{"user":{"name":"Ada on A"}}"#).await;
    on_b.pump_until("A's presence on B", |p, _| {
        p.seen_presence
            .get(&101)
            .is_some_and(|s| s.contains("Ada on A"))
    })
    .await;
    on_b.set_presence(r#"{"user":{"name":"Bo on B"}}"#).await;
    on_a.pump_until("B's presence on A", |p, _| {
        p.seen_presence
            .get(&202)
            .is_some_and(|s| s.contains("Bo on B"))
    })
    .await;
    // Someone on A claims B's editor's presence id with a far higher clock: B's editor is
    // live on B, so A changes nothing, and does not close the forger either.
    let mut forger = Peer::join(&a, &id).await;
    forger
        .send(Message::Awareness(yrs::sync::AwarenessUpdate {
            clients: [(
                yrs::ClientID::new(202),
                yrs::sync::awareness::AwarenessUpdateEntry {
                    clock: 1_000_000,
                    json: r#"{"user":{"name":"Forged"}}"#.into(),
                },
            )]
            .into(),
        }))
        .await;
    on_b.set_presence(r#"{"user":{"name":"Bo again"}}"#).await;
    for peer in [&mut on_a, &mut forger] {
        peer.pump_until("B's renewed presence on A", |p, message| {
            if let Some(Message::Awareness(update)) = message {
                assert!(
                    update.clients.values().all(|e| !e.json.contains("Forged")),
                    "a forged state was relayed"
                );
            }
            p.seen_presence
                .get(&202)
                .is_some_and(|s| s.contains("Bo again"))
        })
        .await;
    }
    // A third person opening the document on B sees A's editor at once (B asks who is here
    // when it opens the document; it is open already, so B holds A's state).
    let mut late = Peer::join(&b, &id).await;
    late.pump_until("A's presence for a late joiner", |p, _| {
        p.seen_presence
            .get(&101)
            .is_some_and(|s| s.contains("Ada on A"))
    })
    .await;
    on_a.close().await;
    on_b.pump_until("A's departure on B", |p, _| {
        p.seen_presence.get(&101).is_some_and(|s| s == "null")
    })
    .await;
    assert_eq!(cluster.stored_text(&id), late.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_document_opened_later_on_another_instance_asks_who_is_here() {
    let cluster = Cluster::start();
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let id = a.new_doc().await;
    let mut on_a = Peer::join_as(&a, &id, Some(303)).await;
    on_a.set_presence(r#"{"user":{"name":"Here first"}}"#).await;
    append(&mut on_a, "before B opened it").await;
    // B opens the document only now: it reads the text from the store and asks A for its
    // presence, long before A's editor renews it (15 s).
    let mut on_b = Peer::join(&b, &id).await;
    text_within(&mut on_b, common::PATIENCE, "before B opened it").await;
    on_b.pump_until("A's presence, asked for", |p, _| {
        p.seen_presence
            .get(&303)
            .is_some_and(|s| s.contains("Here first"))
    })
    .await;
}

/// Redis loses every other change (a test hook on both instances): the store brings the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_redis_loses_are_read_from_the_store() {
    let cluster = Cluster::start();
    let a = cluster.instance_with(true).await;
    let b = cluster.instance_with(true).await;
    let id = a.new_doc().await;
    let mut on_a = Peer::join(&a, &id).await;
    let mut on_b = Peer::join(&b, &id).await;
    let mut expected = String::new();
    for i in 0..30 {
        let chunk = format!("{i},");
        append(&mut on_a, &chunk).await;
        expected.push_str(&chunk);
    }
    // The last change is among those lost: nothing after it shows a gap, only the poll.
    text_within(&mut on_b, HEAL, &expected).await;
    append(&mut on_b, "b1").await;
    append(&mut on_b, "b2").await;
    expected.push_str("b1b2");
    text_within(&mut on_a, HEAL, &expected).await;
    assert_eq!(cluster.stored_text(&id), expected);
}

/// Redis restarts, empty, in the middle of a session; while it is away both instances go on
/// taking changes, and afterwards everything flows through it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restart_mid_session_loses_nothing() {
    let mut cluster = Cluster::start();
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let id = a.new_doc().await;
    let mut on_a = Peer::join(&a, &id).await;
    let mut on_b = Peer::join(&b, &id).await;
    append(&mut on_a, "before;").await;
    text_within(&mut on_b, common::PATIENCE, "before;").await;

    cluster.redis.stop();
    append(&mut on_a, "while Redis is away;").await;
    text_within(&mut on_b, HEAL, "before;while Redis is away;").await;

    cluster.redis.restart();
    a.eventually("A back on Redis", |s| {
        s.hub.cluster_connected() == Some(true)
    })
    .await;
    b.eventually("B back on Redis", |s| {
        s.hub.cluster_connected() == Some(true)
    })
    .await;
    append(&mut on_b, "after.").await;
    text_within(&mut on_a, HEAL, "before;while Redis is away;after.").await;
    assert_eq!(
        cluster.stored_text(&id),
        "before;while Redis is away;after."
    );
}

/// Whatever else is published on Redis (damaged messages, forged positions, other channels)
/// is dropped with a log line; the instances go on and their documents are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_on_redis_changes_nothing() {
    use tandem::server::cluster::envelope::{Envelope, Kind};
    let cluster = Cluster::start();
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let id = a.new_doc().await;
    let mut on_a = Peer::join(&a, &id).await;
    let mut on_b = Peer::join_as(&b, &id, Some(404)).await;
    append(&mut on_a, "kept").await;
    text_within(&mut on_b, common::PATIENCE, "kept").await;
    on_b.set_presence(r#"{"user":{"name":"Bo"}}"#).await;
    on_a.pump_until("Bo", |p, _| p.seen_presence.contains_key(&404))
        .await;
    let doc = a.internal_id(&id).await;

    let client = redis::Client::open(cluster.redis.url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    // The document's channel, as the instances named it (after their store).
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg(format!("tandem:*:doc:{doc}"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(channels.len(), 1, "{channels:?}");
    let channel = channels[0].clone();
    let prefix = channel.strip_suffix(doc.as_str()).unwrap().to_owned();
    let envelope = |kind, instance, seq, payload: &[u8]| {
        Envelope {
            kind,
            instance,
            seq,
            payload,
        }
        .encode()
    };
    // An update that would write "forged" if it were applied.
    let forged = {
        let peer_doc = tandem::protocol::new_doc();
        let text = peer_doc.get_or_insert_text(tandem::protocol::CONTENT);
        let mut txn = yrs::Transact::transact_mut(&peer_doc);
        yrs::Text::insert(&text, &mut txn, 0, "forged");
        let update = yrs::ReadTxn::encode_state_as_update_v1(&txn, &yrs::StateVector::default());
        tandem::protocol::wire::encode(&Message::Sync(yrs::sync::SyncMessage::Update(update)))
    };
    let mut garbage: Vec<(String, Vec<u8>)> = vec![
        (channel.clone(), vec![]),
        (channel.clone(), b"hello".to_vec()),
        (channel.clone(), vec![0xff; 4096]),
        (channel.clone(), envelope(Kind::Stored, 7, 0, &forged)),
        (channel.clone(), envelope(Kind::Stored, 7, -5, &forged)),
        // Far ahead of the log: waits for predecessors that never come, then is dropped.
        (channel.clone(), envelope(Kind::Stored, 7, 1 << 40, &forged)),
        (
            channel.clone(),
            envelope(Kind::Stored, 7, 1 << 40, b"not a frame"),
        ),
        (
            channel.clone(),
            envelope(Kind::Presence, 7, 0, b"\x01garbage"),
        ),
        // Another instance may not remove or change B's editor.
        (
            channel.clone(),
            tandem::protocol::wire::encode(&Message::Awareness(yrs::sync::AwarenessUpdate {
                clients: [(
                    yrs::ClientID::new(404),
                    yrs::sync::awareness::AwarenessUpdateEntry {
                        clock: u32::MAX,
                        json: "null".into(),
                    },
                )]
                .into(),
            }))
            .pipe(|frame| envelope(Kind::Presence, 7, 0, &frame)),
        ),
        (
            format!("{prefix}not-an-id"),
            envelope(Kind::WhoIsHere, 7, 0, b""),
        ),
        (prefix.clone(), vec![1, 2, 3]),
    ];
    // A flood of "who is here": each instance answers a few times, not 200.
    for i in 0..200u64 {
        garbage.push((channel.clone(), envelope(Kind::WhoIsHere, 1000 + i, 0, b"")));
    }
    let (mut listen, mut heard) = client.get_async_pubsub().await.unwrap().split();
    listen.subscribe(&channel).await.unwrap();
    for (channel, message) in garbage {
        redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(message)
            .query_async::<i64>(&mut redis)
            .await
            .unwrap();
    }

    let mut answers = 0;
    let listening = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(message)) = tokio::time::timeout_at(listening, heard.next()).await {
        let bytes = message.get_payload_bytes();
        if let Ok(envelope) = Envelope::decode(bytes) {
            if envelope.kind == Kind::Presence && envelope.instance != 7 {
                answers += 1;
            }
        }
    }
    assert!(
        (1..=8).contains(&answers),
        "{answers} answers to 200 questions"
    );

    // Both instances still serve, and pass real changes on.
    append(&mut on_a, " and more").await;
    text_within(&mut on_b, HEAL, "kept and more").await;
    // Long enough for a forged change to have been waited for and dropped.
    tokio::time::sleep(tandem::server::cluster::GAP_GRACE * 4).await;
    append(&mut on_b, "!").await;
    text_within(&mut on_a, HEAL, "kept and more!").await;
    assert!(
        on_a.seen_presence
            .get(&404)
            .is_some_and(|s| s.contains("Bo")),
        "B's editor is still present on A"
    );
    for server in [&a, &b] {
        let room = server.state.hub.get(&doc).expect("open");
        assert_eq!(room.texts().1, "kept and more!");
    }
    assert_eq!(cluster.stored_text(&id), "kept and more!");
}

/// `kill -9` of one instance while people type on both: everything anyone saw is stored and
/// on the surviving instance's screens; the killed instance's editor reconnects to the other
/// and loses nothing; its presence expires there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_an_instance_loses_nothing_anyone_saw() {
    let cluster = Cluster::start();
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let doomed = cluster.process(dirs.0.path());
    let survivor = cluster.process(dirs.1.path());
    let id = doomed.new_doc();
    let mut on_doomed = Peer::join_url(&doomed.ws_url(&id), Some(505)).await;
    let mut on_survivor = Peer::join_url(&survivor.ws_url(&id), Some(606)).await;
    // A second editor on the doomed instance who will not come back.
    let mut gone = Peer::join_url(&doomed.ws_url(&id), Some(507)).await;
    on_doomed
        .set_presence(r#"{"user":{"name":"On the doomed one"}}"#)
        .await;
    gone.set_presence(r#"{"user":{"name":"Gone for good"}}"#)
        .await;
    on_survivor
        .pump_until("the doomed one's editors", |p, _| {
            p.seen_presence.contains_key(&505) && p.seen_presence.contains_key(&507)
        })
        .await;

    for i in 0..40 {
        append(&mut on_doomed, &format!("d{i} ")).await;
        append(&mut on_survivor, &format!("s{i} ")).await;
    }
    // What the survivor's editor has seen of the doomed one's typing.
    on_survivor
        .pump_until("some of the doomed one's typing", |p, _| {
            p.text().contains("d10 ")
        })
        .await;
    doomed.kill();
    let killed = tokio::time::Instant::now();
    // Typed offline, after the kill, by the doomed instance's editor.
    on_doomed.edit(0, 0, "offline ");
    let seen_by_survivor = on_survivor.text();

    // Everything the survivor's editor saw of the doomed instance's editor is stored.
    let stored = cluster.stored_text(&id);
    let seen: Vec<&str> = seen_by_survivor
        .split_whitespace()
        .filter(|word| word.starts_with('d'))
        .collect();
    assert!(seen.len() > 10, "{seen_by_survivor}");
    for word in seen {
        assert!(stored.contains(word), "{word} was seen but not stored");
    }
    // Reconnecting at once, the editor is told to try again later (1013): its id is still
    // claimed for the killed instance, which renewed the claim until it died.
    // (The refusal may come before the answer to its sync step 1, which waits for the disk.)
    let url = format!("{}?client=tandem", survivor.ws_url(&id));
    let refused = match on_doomed.try_reconnect(&url).await {
        Err(code) => code,
        Ok(()) => on_doomed.expect_close().await,
    };
    assert_eq!(refused, 1013);
    // The killed instance stops renewing what it claims (every 5 s): 12 s later the survivor
    // takes it for gone, with the presence it relayed, well before that presence's own 30 s.
    let gone = killed
        + tandem::server::room::authors::CLAIM_EXPIRY
        + tandem::server::room::PRESENCE_SWEEP
        + Duration::from_secs(3);
    on_survivor
        .pump_within(
            gone.saturating_duration_since(tokio::time::Instant::now()),
            "the abandoned presence going with its instance",
            |p, _| p.seen_presence.get(&507).is_some_and(|s| s == "null"),
        )
        .await;
    // The doomed one's editor reconnects to the survivor and sends what the server lacks,
    // retrying after a second when told to (1013), as its page does: the presence goes in the
    // sweep that forgets the claim, or earlier by its own timeout on a slow run.
    let retry_until = tokio::time::Instant::now() + PATIENCE;
    loop {
        let acks = on_doomed.acks;
        let stored = match on_doomed.try_reconnect(&url).await {
            Ok(()) => {
                on_doomed
                    .pump_or_close(PATIENCE, "the offline edit saved", |p, _| p.acks > acks)
                    .await
            }
            Err(code) => Err(code),
        };
        match stored {
            Ok(()) => break,
            Err(1013) if tokio::time::Instant::now() < retry_until => {
                tokio::time::sleep(Duration::from_secs(1)).await
            }
            Err(code) => panic!("the returning editor was refused with {code}"),
        }
    }
    let everything = |p: &Peer, _: Option<&Message>| {
        (0..40)
            .all(|i| p.text().contains(&format!("d{i} ")) && p.text().contains(&format!("s{i} ")))
            && p.text().contains("offline ")
    };
    on_survivor
        .pump_until("everything, on the survivor", everything)
        .await;
    on_doomed
        .pump_until("everything, reconnected", everything)
        .await;
    assert_eq!(on_survivor.text(), on_doomed.text());
    // The editor who came back shows again, from the survivor.
    on_doomed
        .set_presence(r#"{"user":{"name":"Back on the survivor"}}"#)
        .await;
    on_survivor
        .pump_until("the returning editor's presence", |p, _| {
            p.seen_presence
                .get(&505)
                .is_some_and(|s| s.contains("Back on"))
        })
        .await;
    append(&mut on_doomed, "still connected").await;
    on_survivor
        .pump_until("the returning editor still writing", |p, _| {
            p.text().contains("still connected")
        })
        .await;
    let stored = cluster.stored_text(&id);
    assert_eq!(stored, on_survivor.text());
    drop(cluster.pg);
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

/// The Redis URL may hold a password: no output of Tandem's shows it, whether Redis cannot be
/// reached, the URL does not parse, or the help is printed with it in the environment.
#[test]
fn the_redis_password_is_never_shown() {
    use std::process::{Command, Stdio};
    let marker = "Rp-51c0de-never-shown";
    let pg = PgServer::start();
    let database = pg.new_database();
    let dir = tempfile::tempdir().unwrap();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("redis://:{marker}@127.0.0.1:{closed_port}/0");
    let unparsable = format!("redis://:{marker}@127.0.0.1:notaport/0");
    let run = |url: &str, args: &[&str], serve_for: Option<Duration>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env("TANDEM_DATABASE_URL", &database)
            .env("TANDEM_LINK_KEY", common::TEST_LINK_KEY)
            .env("TANDEM_REDIS_URL", url)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(serve_for) = serve_for {
            std::thread::sleep(serve_for);
            let _ = child.kill();
        }
        let output = child.wait_with_output().unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    // Serving while Redis is unreachable: it says so, again and again, without the URL.
    let (_, all) = run(&unreachable, &[], Some(Duration::from_secs(3)));
    assert!(all.contains("Redis"), "{all}");
    assert!(!all.contains(marker), "{all}");
    let (ok, all) = run(&unparsable, &[], Some(Duration::from_secs(3)));
    assert!(!ok);
    assert!(all.contains("Redis URL"), "{all}");
    assert!(!all.contains(marker), "{all}");
    let (_, all) = run(&unreachable, &["--help"], None);
    assert!(all.contains("--redis-url"), "{all}");
    assert!(!all.contains(marker), "{all}");
}

/// Through a session longer than the link's checks (a PING every 5 s), each instance keeps
/// its two connections to Redis: none is dropped and made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_links_to_redis_stay_up_through_their_checks() {
    let cluster = Cluster::start();
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let id = a.new_doc().await;
    let mut on_a = Peer::join(&a, &id).await;
    let mut on_b = Peer::join(&b, &id).await;
    append(&mut on_a, "x").await;
    text_within(&mut on_b, common::PATIENCE, "x").await;
    let client = redis::Client::open(cluster.redis.url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let connections = |info: String| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix("total_connections_received:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut redis)
        .await
        .unwrap();
    let before = connections(info);
    // Three checks' worth of the session, with changes flowing all along.
    for i in 0..24 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        append(&mut on_a, "y").await;
        text_within(
            &mut on_b,
            common::PATIENCE,
            &format!("x{}", "y".repeat(i + 1)),
        )
        .await;
    }
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        connections(info),
        before,
        "an instance reconnected to Redis"
    );
    assert_eq!(a.state.hub.cluster_connected(), Some(true));
    assert_eq!(b.state.hub.cluster_connected(), Some(true));
}

/// Changes made elsewhere count toward this instance's share of the document's log: it
/// compacts it, so a document kept small by deleting stays open to this instance's editors
/// however much was typed and deleted on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn typing_and_deleting_elsewhere_keeps_a_small_document_open_here() {
    let cluster = Cluster::start();
    let small = |config: &mut tandem::server::config::Config| {
        config.max_doc_bytes = 64 * 1024;
        config.compact_after_updates = 20;
    };
    let (database, redis) = (cluster.database.clone(), cluster.redis.url());
    let instance = || {
        let (database, redis) = (database.clone(), redis.clone());
        TestServer::start_with(move |config| {
            config.database_url = Some(database);
            config.link_key = Some(common::TEST_LINK_KEY.into());
            config.redis_url = Some(redis);
            small(config);
        })
    };
    let (a, b) = (instance().await, instance().await);
    let id = a.new_doc().await;
    let mut on_a = Peer::join_url(&format!("{}?client=tandem", a.ws_url(id.as_str())), None).await;
    let mut on_b = Peer::join(&b, &id).await;
    // 200 KiB typed and deleted on A, 1 KiB at a time: the document stays empty.
    let chunk = "z".repeat(1024);
    for _ in 0..200 {
        on_a.insert(0, &chunk).await;
        let delete = on_a.edit(0, 1024, "");
        on_a.send(Message::Sync(yrs::sync::SyncMessage::Update(delete)))
            .await;
    }
    append(&mut on_a, "small").await;
    // A writer faster than compaction is slowed to its pace: every change is saved in time,
    // none refused for the size of the log waiting to be folded.
    while on_a.acks < 401 {
        let next = on_a.acks + 1;
        on_a.pump_until("the next change saved", |p, _| p.acks >= next)
            .await;
    }
    text_within(&mut on_b, HEAL, "small").await;
    // B's editor writes, and is not refused for a size the document does not have.
    append(&mut on_b, " and fine").await;
    text_within(&mut on_a, HEAL, "small and fine").await;
}

/// An editor id in use on one instance cannot be written as on another: the second writer is
/// told to try again later (1013) and the editor's own next keystrokes reach everyone. (A
/// writer taking the id's next clocks would make every replica drop them as repeats.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_editor_id_in_use_on_one_instance_cannot_be_written_as_on_another() {
    let cluster = Cluster::start();
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let id = a.new_doc().await;
    let mut victim = Peer::join_as(&b, &id, Some(202)).await;
    let mut watcher = Peer::join(&a, &id).await;
    // Once A hears B (the victim's presence), A hears the claim B makes on the first write.
    victim.set_presence(r#"{"user":{"name":"Victim"}}"#).await;
    watcher
        .pump_until("the victim's presence", |p, _| {
            p.seen_presence.contains_key(&202)
        })
        .await;
    append(&mut victim, "hello ").await;
    text_within(&mut watcher, common::PATIENCE, "hello ").await;

    let mut forger = Peer::join_as(&a, &id, Some(202)).await;
    assert_eq!(forger.text(), "hello ");
    append(&mut forger, "EVIL").await;
    assert_eq!(forger.expect_close().await, 1013);

    append(&mut victim, "good").await;
    text_within(&mut watcher, common::PATIENCE, "hello good").await;
    assert_eq!(cluster.stored_text(&id), "hello good");
}

/// Instances of another database on the same Redis (a copy restored from a dump on another
/// server, with the same document ids, or another database on the same server) use channels
/// of their own: neither hears the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_of_another_database_on_the_same_redis_are_not_heard() {
    let cluster = Cluster::start();
    let elsewhere = PgServer::start();
    let a = cluster.instance().await;
    let id = a.new_doc().await;
    let doc = a.internal_id(&id).await;
    let mut strangers = Vec::new();
    for database in [elsewhere.new_database(), cluster.pg.new_database()] {
        let redis = cluster.redis.url();
        let server = TestServer::start_with(move |config| {
            config.database_url = Some(database);
            config.link_key = Some(common::TEST_LINK_KEY.into());
            config.redis_url = Some(redis);
        })
        .await;
        // The same link to the same internal id in each stranger's database.
        let (store, doc) = (server.state.store.clone(), doc.clone());
        let link = NewLink {
            token_hash: token_hash(&id),
            generation: 0,
            new_document: true,
        };
        tokio::task::spawn_blocking(move || store.set_link(&doc, Role::Edit, link))
            .await
            .unwrap()
            .unwrap();
        strangers.push(server);
    }
    let mut here = Peer::join(&a, &id).await;
    let mut there: Vec<Peer> = Vec::new();
    for server in &strangers {
        there.push(Peer::join(server, &id).await);
    }
    append(&mut here, "here").await;
    for (i, peer) in there.iter_mut().enumerate() {
        append(peer, &format!("there{i}")).await;
    }
    // Past the time a change takes across instances, and past a poll of the store.
    tokio::time::sleep(Duration::from_secs(2)).await;
    append(&mut here, "!").await;
    text_within(&mut here, common::PATIENCE, "here!").await;
    for (i, peer) in there.iter_mut().enumerate() {
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            peer.pump_until("anything", |_, _| false),
        )
        .await;
        assert_eq!(peer.text(), format!("there{i}"));
    }
    assert_eq!(cluster.stored_text(&id), "here!");
}

/// Instances sharing a database must derive links under one key: without it, serving on
/// PostgreSQL is refused at start and says how to make one; a key that is not 32 bytes of
/// base64 is refused too.
#[test]
fn serving_on_postgresql_needs_the_shared_link_key() {
    let pg = PgServer::start();
    let database = pg.new_database();
    let dir = tempfile::tempdir().unwrap();
    for (key, expected) in [
        (None, "TANDEM_LINK_KEY"),
        (Some("c2hvcnQ="), "32 bytes"),
        (Some("not base64 at all!"), "base64"),
    ] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"));
        command
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--addr", "127.0.0.1:0"])
            .env("TANDEM_DATABASE_URL", &database)
            .env_remove("TANDEM_LINK_KEY");
        if let Some(key) = key {
            command.env("TANDEM_LINK_KEY", key);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(all.contains(expected), "{key:?}: {all}");
    }
}

/// A link reset or a deletion on one instance closes the connections that came by it on the
/// other instance too (4001, 4002): the other instance reads the links from the store when
/// told, so what it closes is what the store no longer opens. After a deletion nothing of the
/// document is left, though an editor on the other instance was typing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resets_and_deletions_on_one_instance_close_sessions_on_the_other() {
    let cluster = Cluster::start();
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let (edit, view) = a.new_doc_links().await;
    let doc = a.internal_id(&edit).await;
    let mut on_a = Peer::join_as(&a, &edit, Some(101)).await;
    let mut editor_on_b = Peer::join_as(&b, &edit, Some(202)).await;
    let mut viewer_on_b = Peer::join(&b, &view).await;
    append(&mut on_a, "shared").await;
    text_within(&mut viewer_on_b, HEAL, "shared").await;
    text_within(&mut editor_on_b, HEAL, "shared").await;

    // The view link is reset on A: B's viewer is closed, B's editor is not.
    let links = a
        .state
        .hub
        .reset_links(&a.state.links, doc.clone(), vec![Role::View])
        .await
        .unwrap();
    assert_eq!(viewer_on_b.expect_close().await, 4001);
    let mut new_viewer = Peer::join(&b, &links.view.unwrap()).await;
    text_within(&mut new_viewer, HEAL, "shared").await;
    append(&mut editor_on_b, " still").await;
    text_within(&mut on_a, HEAL, "shared still").await;

    // Deleted on A while B's editor types: everyone on both closes with 4002.
    let typing = tokio::spawn(async move {
        for _ in 0..100 {
            // Sent without waiting for the outcome: the connection may be closing.
            let end = editor_on_b.text().encode_utf16().count() as u32;
            let update = editor_on_b.edit(end, 0, "x");
            let frame = Message::Sync(yrs::sync::SyncMessage::Update(update)).encode_v1();
            editor_on_b
                .send_raw(tokio_tungstenite::tungstenite::Message::Binary(
                    frame.into(),
                ))
                .await;
            tokio::task::yield_now().await;
        }
        editor_on_b.expect_close().await
    });
    a.state
        .hub
        .delete(&a.state.links, doc.clone())
        .await
        .unwrap();
    assert_eq!(on_a.expect_close().await, 4002);
    assert_eq!(new_viewer.expect_close().await, 4002);
    assert_eq!(typing.await.unwrap(), 4002);
    b.eventually("B's room to close", |s| s.hub.get(&doc).is_none())
        .await;
    b.state.hub.journal().flush().await;
    // Nothing of it is left in the shared database.
    let database = cluster.database.clone();
    let rows = |table: &str, column: &str| {
        cluster.pg.sql_in(
            &database_name(&database),
            &format!("SELECT COUNT(*) FROM {table} WHERE {column} = '{doc}'"),
        )
    };
    let mut left = Vec::new();
    for _ in 0..50 {
        left = [
            rows("documents", "id"),
            rows("updates", "doc"),
            rows("versions", "doc"),
            rows("capabilities", "doc"),
        ]
        .iter()
        .map(|count| count.trim().to_string())
        .collect::<Vec<_>>();
        if left.iter().all(|count| count == "0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left.iter().all(|count| count == "0"), "{left:?}");
}

/// The database name in a PostgreSQL URL.
fn database_name(url: &str) -> String {
    url.rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string()
}

/// A reset announced while Redis was away still reaches the other instance: when its
/// subscription takes hold again, it reads the document's links from the store and closes the
/// connection that came by the old link.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_made_while_redis_is_away_closes_the_old_link_when_it_is_back() {
    let mut cluster = Cluster::start();
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let (edit, view) = a.new_doc_links().await;
    let doc = a.internal_id(&edit).await;
    let mut on_a = Peer::join_as(&a, &edit, Some(101)).await;
    let mut viewer_on_b = Peer::join(&b, &view).await;
    append(&mut on_a, "shared").await;
    text_within(&mut viewer_on_b, HEAL, "shared").await;

    cluster.redis.stop();
    a.state
        .hub
        .reset_links(&a.state.links, doc, vec![Role::View])
        .await
        .unwrap();
    cluster.redis.restart();
    assert_eq!(viewer_on_b.expect_close().await, 4001);
}

/// A reset whose announcement never reaches an instance (a dropped message; here made straight
/// in the store, announced to nobody) still closes the connections that came by the old link
/// there: each open document reads its links again every 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_nobody_hears_of_closes_the_old_link_at_the_next_recheck() {
    let cluster = Cluster::start();
    let b = cluster.instance().await;
    let (edit, view) = b.new_doc_links().await;
    let doc = b.internal_id(&edit).await;
    let mut viewer = Peer::join(&b, &view).await;
    let store = b.state.store.clone();
    // Held until the room has read its links once (when its subscription took hold).
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::spawn_blocking(move || {
        let now = store.links(&doc).unwrap();
        let (_, generation) = now.iter().find(|(role, _)| *role == Role::View).unwrap();
        let link = NewLink {
            token_hash: token_hash(&common::random_id()),
            generation: generation + 1,
            new_document: false,
        };
        store.set_link(&doc, Role::View, link)
    })
    .await
    .unwrap()
    .unwrap();
    let closed = viewer
        .pump_or_close(
            Duration::from_secs(20),
            "the old link's connection closed",
            |_, _| false,
        )
        .await;
    assert_eq!(closed, Err(4001));
}

/// A page that leaves withdraws its presence and closes at once, its withdrawal within the
/// presence batch's window: the other instance hears it within seconds, not at the presence
/// timeout, although the page was the document's last connection on its own instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_withdrawal_held_for_the_batch_reaches_the_other_instance_when_the_last_page_leaves() {
    let cluster = Cluster::start();
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let id = a.new_doc().await;
    let mut on_b = Peer::join_as(&b, &id, Some(202)).await;
    let mut on_a = Peer::join_as(&a, &id, Some(101)).await;
    on_a.set_presence(r#"{"user":{"name":"Leaving"}}"#).await;
    on_b.pump_until("A's presence on B", |p, _| {
        p.seen_presence
            .get(&101)
            .is_some_and(|s| s.contains("Leaving"))
    })
    .await;
    // Within the same batch window: the withdrawal waits for the batch, then the page goes.
    on_a.set_presence(r#"{"user":{"name":"Leaving now"}}"#)
        .await;
    on_a.awareness.clean_local_state();
    let withdrawal = on_a.awareness.update().unwrap();
    on_a.send(Message::Awareness(withdrawal)).await;
    let _ = on_a.ws.close(None).await;
    drop(on_a);
    // Well before any presence timeout (30 s) could remove it instead.
    on_b.pump_within(Duration::from_secs(5), "A's presence gone on B", |p, _| {
        p.seen_presence.get(&101).is_some_and(|s| s == "null")
    })
    .await;
}
