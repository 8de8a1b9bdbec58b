//! The store's contract, run against both engines: SQLite in a temporary directory and
//! PostgreSQL in a private server of the test's own (`common::postgres`). Several instances
//! sharing one PostgreSQL database are stores opened on the same URL.

mod common;

use common::postgres::PgServer;
use std::sync::Arc;
use tandem::doc_id::DocId;
use tandem::server::storage::postgres::PostgresStore;
use tandem::server::storage::sqlite::SqliteStore;
use tandem::server::storage::{Compaction, DocStore, NewUpdate, NewVersion, StoreError};
use yrs::{GetString, ReadTxn, Text, Transact};

fn id() -> DocId {
    common::random_id()
}

/// An update that writes `text` as Yjs client `client`.
fn typed(client: u64, text: &str) -> Vec<u8> {
    let doc = yrs::Doc::with_options(yrs::Options {
        client_id: yrs::ClientID::new(client),
        offset_kind: yrs::OffsetKind::Utf16,
        ..Default::default()
    });
    let content = doc.get_or_insert_text(tandem::protocol::CONTENT);
    let mut txn = doc.transact_mut();
    content.insert(&mut txn, 0, text);
    txn.encode_update_v1()
}

fn update(doc: &DocId, data: Vec<u8>, title: &str) -> NewUpdate {
    NewUpdate {
        doc: doc.clone(),
        data,
        title: title.into(),
    }
}

fn text_of(store: &dyn DocStore, doc: &DocId) -> String {
    let stored = store.load(doc).unwrap().expect("stored");
    let replica = stored.replica().unwrap();
    let txn = replica.transact();
    txn.get_text(tandem::protocol::CONTENT)
        .map(|t| t.get_string(&txn))
        .unwrap_or_default()
}

/// One document written by one client, update by update.
fn writes(doc: &DocId, parts: &[&str]) -> Vec<NewUpdate> {
    let replica = tandem::protocol::new_doc();
    let content = replica.get_or_insert_text(tandem::protocol::CONTENT);
    parts
        .iter()
        .map(|part| {
            let mut txn = replica.transact_mut();
            let len = content.len(&txn);
            content.insert(&mut txn, len, part);
            let data = txn.encode_update_v1();
            update(doc, data, "Notes")
        })
        .collect()
}

fn appends_load_back_in_order_with_positions_per_document(store: &dyn DocStore) {
    let (a, b) = (id(), id());
    assert!(store.load(&a).unwrap().is_none());
    let mut batch = writes(&a, &["one ", "two "]);
    batch.extend(writes(&b, &["other"]));
    let seqs = store.append(&batch).unwrap();
    assert_eq!(seqs.len(), 3);
    assert!(seqs[0] < seqs[1], "{seqs:?}");
    assert_eq!(text_of(store, &a), "one two ");
    assert_eq!(text_of(store, &b), "other");
    let stored = store.load(&a).unwrap().unwrap();
    assert_eq!(stored.updates.len(), 2);
    assert_eq!(stored.last_seq, seqs[1]);
    assert_eq!(stored.meta.title, "Notes");
    assert!(stored.meta.created_at > 0 && stored.meta.updated_at >= stored.meta.created_at);
}

fn compaction_replaces_the_log_up_to_its_position(store: &dyn DocStore) {
    let doc = id();
    let first = store.append(&writes(&doc, &["alpha "])).unwrap();
    let snapshot = {
        let stored = store.load(&doc).unwrap().unwrap();
        let replica = stored.replica().unwrap();
        let txn = replica.transact();
        txn.encode_state_as_update_v1(&yrs::StateVector::default())
    };
    // Written after the snapshot was taken, by the same replica's continuation.
    let replica = store.load(&doc).unwrap().unwrap().replica().unwrap();
    let later = {
        let content = replica.get_or_insert_text(tandem::protocol::CONTENT);
        let mut txn = replica.transact_mut();
        let len = content.len(&txn);
        content.insert(&mut txn, len, "beta");
        txn.encode_update_v1()
    };
    store.append(&[update(&doc, later, "Notes")]).unwrap();
    store
        .compact(&Compaction {
            doc: doc.clone(),
            snapshot,
            upto: first[0],
            title: "Notes".into(),
        })
        .unwrap();
    let stored = store.load(&doc).unwrap().unwrap();
    assert!(stored.snapshot.is_some());
    assert_eq!(
        stored.updates.len(),
        1,
        "only what came after the compacted position"
    );
    assert_eq!(text_of(store, &doc), "alpha beta");
}

fn versions_are_kept_listed_and_read(store: &dyn DocStore) {
    let doc = id();
    let version = |content: &str| NewVersion {
        doc: doc.clone(),
        title: "T".into(),
        content: content.into(),
        authors: vec!["Ana".into()],
    };
    let first = store.add_version(&version("one")).unwrap().expect("kept");
    assert_eq!(
        store.add_version(&version("one")).unwrap(),
        None,
        "a repeat"
    );
    let second = store.add_version(&version("two")).unwrap().expect("kept");
    let listed = store.versions(&doc).unwrap();
    assert_eq!(
        listed.iter().map(|v| v.id).collect::<Vec<_>>(),
        vec![second, first]
    );
    let read = store.version(&doc, first).unwrap().unwrap();
    assert_eq!(read.content, "one");
    assert_eq!(read.info.authors, vec!["Ana".to_string()]);
    assert!(
        store.version(&id(), first).unwrap().is_none(),
        "another document's id"
    );
}

/// A document's links: each found by its token's hash; replacing one makes the old token open
/// nothing at once, and leaves the other link alone.
fn a_reset_link_opens_nothing_and_its_successor_opens_the_document(store: &dyn DocStore) {
    use tandem::server::capability::{token_hash, Role};
    use tandem::server::storage::capabilities::NewLink;
    let doc = id();
    store.append(&[update(&doc, typed(1, "x"), "T")]).unwrap();
    let (edit, view, reset) = (id(), id(), id());
    let link = |token: &DocId, generation| NewLink {
        token_hash: token_hash(token),
        generation,
        new_document: true,
    };
    store.set_link(&doc, Role::Edit, link(&edit, 1)).unwrap();
    store.set_link(&doc, Role::View, link(&view, 1)).unwrap();
    let found = |token: &DocId| store.resolve(&token_hash(token)).unwrap();
    let opened = found(&edit).unwrap();
    assert_eq!(
        (opened.doc, opened.role, opened.generation),
        (doc.clone(), Role::Edit, 1)
    );
    assert_eq!(found(&view).unwrap().role, Role::View);
    store.set_link(&doc, Role::Edit, link(&reset, 2)).unwrap();
    assert_eq!(found(&edit), None);
    assert_eq!(found(&reset).unwrap().generation, 2);
    assert_eq!(found(&view).unwrap().generation, 1);
    let mut links = store.links(&doc).unwrap();
    links.sort_by_key(|(role, _)| role.as_str());
    assert_eq!(links, vec![(Role::Edit, 2), (Role::View, 1)]);
    assert_eq!(found(&id()), None);
}

/// Deleting a document removes its metadata, log, snapshot, versions and links at once, and
/// leaves its links' hashes to answer "gone"; another document is untouched.
fn a_deleted_document_leaves_only_its_links_as_gone(store: &dyn DocStore) {
    use tandem::server::capability::{token_hash, Role};
    use tandem::server::storage::capabilities::NewLink;
    use tandem::server::storage::{Compaction, NewVersion};
    let (doc, other) = (id(), id());
    let (edit, view, kept) = (id(), id(), id());
    store.append(&writes(&doc, &["one", " two"])).unwrap();
    store.append(&writes(&other, &["other"])).unwrap();
    let snapshot = {
        use yrs::{ReadTxn, Transact};
        let replica = store.load(&doc).unwrap().unwrap().replica().unwrap();
        let bytes = replica
            .transact()
            .encode_state_as_update_v1(&yrs::StateVector::default());
        bytes
    };
    store
        .compact(&Compaction {
            doc: doc.clone(),
            title: "T".into(),
            snapshot,
            upto: store.load(&doc).unwrap().unwrap().last_seq,
        })
        .unwrap();
    store.append(&writes(&doc, &[" three"])).unwrap();
    store
        .add_version(&NewVersion {
            doc: doc.clone(),
            title: "T".into(),
            content: "one two".into(),
            authors: vec!["Ada".into()],
        })
        .unwrap();
    for (token, role) in [(&edit, Role::Edit), (&view, Role::View)] {
        let link = NewLink {
            token_hash: token_hash(token),
            generation: 1,
            new_document: true,
        };
        store.set_link(&doc, role, link).unwrap();
    }
    store
        .set_link(
            &other,
            Role::Edit,
            NewLink {
                token_hash: token_hash(&kept),
                generation: 1,
                new_document: true,
            },
        )
        .unwrap();

    assert!(store.delete_document(&doc).unwrap());
    assert!(store.load(&doc).unwrap().is_none(), "nothing of it loads");
    assert!(store.versions(&doc).unwrap().is_empty());
    assert!(store.links(&doc).unwrap().is_empty());
    for token in [&edit, &view] {
        assert_eq!(store.resolve(&token_hash(token)).unwrap(), None);
        assert!(store.is_gone(&token_hash(token)).unwrap());
    }
    assert!(
        !store.is_gone(&token_hash(&id())).unwrap(),
        "only its links are gone"
    );
    // A reset landing after the deletion makes nothing, and a deleted link is never reused.
    let late = NewLink {
        token_hash: token_hash(&id()),
        generation: 2,
        new_document: false,
    };
    let refused = store.set_link(&doc, Role::View, late);
    assert!(
        matches!(refused, Err(tandem::server::storage::StoreError::Deleted)),
        "{refused:?}"
    );
    let reused = NewLink {
        token_hash: token_hash(&view),
        generation: 1,
        new_document: true,
    };
    let refused = store.set_link(&doc, Role::View, reused);
    assert!(
        matches!(refused, Err(tandem::server::storage::StoreError::Deleted)),
        "{refused:?}"
    );
    assert!(store.load(&doc).unwrap().is_none());
    assert!(store.links(&doc).unwrap().is_empty());
    // A change still in flight brings the document's row back for a moment: a reset then
    // still makes nothing (a live document always has a link), and deleting again clears it.
    store.append(&writes(&doc, &["late"])).unwrap();
    let late = NewLink {
        token_hash: token_hash(&id()),
        generation: 2,
        new_document: false,
    };
    let refused = store.set_link(&doc, Role::Edit, late);
    assert!(
        matches!(refused, Err(tandem::server::storage::StoreError::Deleted)),
        "{refused:?}"
    );
    assert!(store.delete_document(&doc).unwrap());
    assert!(store.load(&doc).unwrap().is_none());
    // Deleting again changes nothing; the other document is whole.
    assert!(!store.delete_document(&doc).unwrap());
    assert_eq!(text_of(store, &other), "other");
    assert!(store.resolve(&token_hash(&kept)).unwrap().is_some());
    assert!(!store.is_gone(&token_hash(&kept)).unwrap());
}

fn a_writable_store_says_so(store: &dyn DocStore) {
    store.check_writable().unwrap();
}

/// A title is whatever someone typed or pasted, NUL included: it must never make a
/// document's changes unstorable.
fn any_title_is_stored(store: &dyn DocStore) {
    let doc = id();
    let title = "a\0b\u{1}<script>\u{202e}";
    let mut batch = writes(&doc, &["text"]);
    batch[0].title = title.into();
    store.append(&batch).unwrap();
    let stored = store.load(&doc).unwrap().unwrap();
    assert!(stored.meta.title.starts_with('a') && stored.meta.title.ends_with("<script>\u{202e}"));
    assert!(!stored.meta.title.contains('\0') || stored.meta.title == title);
    let snapshot = stored
        .replica()
        .unwrap()
        .transact()
        .encode_state_as_update_v1(&yrs::StateVector::default());
    store
        .compact(&Compaction {
            doc: doc.clone(),
            snapshot,
            upto: stored.last_seq,
            title: title.into(),
        })
        .unwrap();
    let kept = store
        .add_version(&NewVersion {
            doc: doc.clone(),
            title: title.into(),
            content: "text".into(),
            authors: vec!["\0".into()],
        })
        .unwrap();
    assert!(kept.is_some());
    assert_eq!(text_of(store, &doc), "text");
}

/// One test per engine for each shared check: `mod $engine { fn $check() }`.
macro_rules! suite {
    ($engine:ident, $open:expr, [$($check:ident),* $(,)?]) => {
        mod $engine {
            use super::*;
            $(
                #[test]
                fn $check() {
                    let (_keep, store) = $open;
                    super::$check(&*store);
                }
            )*
        }
    };
}

/// The checks every engine passes.
macro_rules! suite_on {
    ($engine:ident, $open:expr) => {
        suite!(
            $engine,
            $open,
            [
                appends_load_back_in_order_with_positions_per_document,
                compaction_replaces_the_log_up_to_its_position,
                versions_are_kept_listed_and_read,
                any_title_is_stored,
                a_writable_store_says_so,
                a_reset_link_opens_nothing_and_its_successor_opens_the_document,
                a_deleted_document_leaves_only_its_links_as_gone,
            ]
        );
    };
}

fn open_sqlite() -> (tempfile::TempDir, Arc<dyn DocStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn DocStore> = Arc::new(SqliteStore::open(dir.path(), 0).unwrap());
    (dir, store)
}

fn open_postgres() -> (PgServer, Arc<dyn DocStore>) {
    let server = PgServer::start();
    let store: Arc<dyn DocStore> = Arc::new(PostgresStore::open(&server.new_database()).unwrap());
    (server, store)
}

suite_on!(sqlite, open_sqlite());
suite_on!(postgres, open_postgres());

/// Two instances appending to the same documents at once, in batches that name them in
/// opposite orders: no deadlock, and each document's positions run 1, 2, 3… without a gap or
/// a repeat, in the order the updates were accepted.
#[test]
fn instances_appending_at_once_share_one_gapless_order_per_document() {
    let server = PgServer::start();
    let url = server.new_database();
    let (a, b) = (id(), id());
    let per_instance = 100;
    let handles: Vec<_> = (0..2)
        .map(|instance| {
            let url = url.clone();
            let (a, b) = (a.clone(), b.clone());
            std::thread::spawn(move || {
                let store = PostgresStore::open(&url).unwrap();
                let mut seen = Vec::new();
                for i in 0..per_instance {
                    let (first, second) = if instance == 0 { (&a, &b) } else { (&b, &a) };
                    let data = typed(instance * 1000 + i + 1, "x");
                    let seqs = store
                        .append(&[update(first, data.clone(), "T"), update(second, data, "T")])
                        .unwrap();
                    seen.push(seqs);
                }
                seen
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let store = PostgresStore::open(&url).unwrap();
    for doc in [&a, &b] {
        let stored = store.load(doc).unwrap().unwrap();
        assert_eq!(stored.updates.len(), 2 * per_instance as usize);
        assert_eq!(stored.last_seq, 2 * per_instance as i64);
    }
    // Each instance saw its own positions rise.
    for seen in &results {
        for pair in seen.windows(2) {
            assert!(
                pair[0][0] < pair[1][0] && pair[0][1] < pair[1][1],
                "{pair:?}"
            );
        }
    }
}

/// Positions count per document from 1, and a compaction keeps the count going.
#[test]
fn positions_are_per_document_and_never_reused() {
    let (_server, store) = open_postgres();
    let (a, b) = (id(), id());
    let mut batch = writes(&a, &["one ", "two "]);
    batch.extend(writes(&b, &["other"]));
    assert_eq!(store.append(&batch).unwrap(), vec![1, 2, 1]);
    let stored = store.load(&a).unwrap().unwrap();
    let snapshot = stored
        .replica()
        .unwrap()
        .transact()
        .encode_state_as_update_v1(&yrs::StateVector::default());
    store
        .compact(&Compaction {
            doc: a.clone(),
            snapshot,
            upto: 2,
            title: "Notes".into(),
        })
        .unwrap();
    let compacted = store.load(&a).unwrap().unwrap();
    assert!(compacted.updates.is_empty());
    assert_eq!(
        compacted.last_seq, 2,
        "the newest position, not the emptied log's"
    );
    let more = writes(&a, &["three"]);
    assert_eq!(store.append(&more).unwrap(), vec![3]);
}

/// Two instances compact one document at once; the one with the older snapshot commits
/// last and must change nothing: every update stays in the snapshot or the log.
#[test]
fn an_older_compaction_committed_last_changes_nothing() {
    let (_server, store) = open_postgres();
    let doc = id();
    let replica = tandem::protocol::new_doc();
    let content = replica.get_or_insert_text(tandem::protocol::CONTENT);
    let mut snapshots = Vec::new();
    for part in ["a", "b", "c"] {
        let data = {
            let mut txn = replica.transact_mut();
            let len = content.len(&txn);
            content.insert(&mut txn, len, part);
            txn.encode_update_v1()
        };
        store.append(&[update(&doc, data, "T")]).unwrap();
        snapshots.push(
            replica
                .transact()
                .encode_state_as_update_v1(&yrs::StateVector::default()),
        );
    }
    let compaction = |upto: usize| Compaction {
        doc: doc.clone(),
        snapshot: snapshots[upto - 1].clone(),
        upto: upto as i64,
        title: "T".into(),
    };
    store.compact(&compaction(3)).unwrap();
    store.compact(&compaction(1)).unwrap();
    assert_eq!(text_of(&*store, &doc), "abc");
    // A compaction claiming positions never handed out changes nothing either.
    store.compact(&compaction(3)).unwrap();
    let mut beyond = compaction(3);
    beyond.upto = 99;
    store.compact(&beyond).unwrap();
    assert_eq!(text_of(&*store, &doc), "abc");
    assert_eq!(store.load(&doc).unwrap().unwrap().last_seq, 3);
}

/// A database that turns read-only (a standby, or by setting) is found by the probe
/// without writing anything.
#[test]
fn a_read_only_database_is_found_without_writing() {
    let server = PgServer::start();
    let url = server.new_database();
    let store = PostgresStore::open(&url).unwrap();
    store.check_writable().unwrap();
    let database = url.rsplit('/').next().unwrap().to_string();
    server.sql(&format!(
        "ALTER DATABASE {database} SET default_transaction_read_only = on"
    ));
    // New connections see the setting.
    let store = PostgresStore::open_unmigrated(&url).unwrap().0;
    assert!(matches!(store.check_writable(), Err(StoreError::ReadOnly)));
    let error = store.append(&writes(&id(), &["x"])).unwrap_err();
    assert!(matches!(error, StoreError::ReadOnly), "{error:?}");
}

#[test]
fn instances_starting_at_once_migrate_once() {
    let server = PgServer::start();
    let url = server.new_database();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresStore::open(&url).map(|_| ()))
        })
        .collect();
    for handle in handles {
        handle.join().unwrap().unwrap();
    }
    let database = url.rsplit('/').next().unwrap();
    let applied = server.sql_in(database, "SELECT count(*) FROM tandem_schema_history");
    assert_eq!(applied.trim(), PostgresStore::schema_version().to_string());
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = PostgresStore::open(&format!("postgres://tandem@127.0.0.1:{port}/none"))
        .err()
        .expect("refused");
    assert!(matches!(error, StoreError::Unreachable(_)), "{error:?}");
    let said = error.to_string();
    assert!(
        said.contains("cannot be reached") && said.contains("refused"),
        "{said}"
    );
    let error = PostgresStore::open("mysql://nothing")
        .err()
        .expect("refused");
    assert!(matches!(error, StoreError::Setup(_)), "{error:?}");
}

/// Documents from before links had roles are moved to internal ids on the first start after
/// the migration, and only once: a start that did not finish the move does it at the next
/// start (the marker goes in the same transaction as the move), and a later start changes
/// nothing.
#[test]
fn documents_from_before_roles_move_to_internal_ids_once_on_postgres() {
    use tandem::server::capability::{token_hash, Role};
    let server = PgServer::start();
    let url = server.new_database();
    let database = url.rsplit('/').next().unwrap().to_string();
    drop(PostgresStore::open(&url).unwrap());
    // As a database just migrated from before roles: a document stored under its link, and
    // the move still to do.
    let old = id();
    {
        let store = PostgresStore::open(&url).unwrap();
        store.append(&writes(&old, &["from ", "before"])).unwrap();
    }
    server.sql_in(
        &database,
        "CREATE TABLE rekey_pending (since BIGINT NOT NULL); INSERT INTO rekey_pending VALUES (0)",
    );

    let store = PostgresStore::open(&url).unwrap();
    let opened = store
        .resolve(&token_hash(&old))
        .unwrap()
        .expect("the old link opens it");
    assert_eq!((opened.role, opened.generation), (Role::Edit, 0));
    assert_ne!(opened.doc, old, "a new internal id");
    assert_eq!(text_of(&store, &opened.doc), "from before");
    assert!(
        store.load(&old).unwrap().is_none(),
        "nothing is left under the old id"
    );
    let left = server.sql_in(&database, "SELECT to_regclass('rekey_pending') IS NULL");
    assert_eq!(left.trim(), "t", "the move is marked done");
    drop(store);

    // Another start moves nothing again.
    let store = PostgresStore::open(&url).unwrap();
    assert_eq!(
        store.resolve(&token_hash(&old)).unwrap().unwrap().doc,
        opened.doc
    );
    assert_eq!(store.document_count().unwrap(), 1);
}
