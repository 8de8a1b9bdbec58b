//! Tests of the presence registry: ownership, re-encoding, bounds.
use super::*;

fn update(client: u64, clock: u32, json: &str) -> AwarenessUpdate {
    let mut clients = HashMap::new();
    clients.insert(
        ClientID::new(client),
        AwarenessUpdateEntry {
            clock,
            json: json.into(),
        },
    );
    AwarenessUpdate { clients }
}

#[test]
fn states_are_reencoded_and_owned() {
    let mut registry = Registry::default();
    let limits = PresenceLimits::default();
    let (mut a, mut b) = (Presence::default(), Presence::default());
    let accepted = registry
        .accept(
            1,
            &mut a,
            update(7, 1, r#" { "user" : {"name":"A"} } "#),
            limits,
        )
        .unwrap();
    assert_eq!(
        &*accepted.clients[&ClientID::new(7)].json,
        r#"{"user":{"name":"A"}}"#
    );
    let stolen = registry.accept(2, &mut b, update(7, 2, r#"{"user":{}}"#), limits);
    assert_eq!(stolen.unwrap_err().code, crate::protocol::close::POLICY);
    let removed = registry.accept(2, &mut b, update(7, 9, "null"), limits);
    assert_eq!(removed.unwrap_err().code, crate::protocol::close::POLICY);
    assert_eq!(
        registry
            .counter()
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// What the server knows decides who shows as a viewer: a viewer's state is marked, an
/// editor's mark (a forged one, or any value under the key) is removed.
#[test]
fn viewers_are_marked_by_the_server_and_editors_cannot_pass_for_one() {
    let mut registry = Registry::default();
    let limits = PresenceLimits::default();
    let mut viewer = Presence {
        viewer: true,
        ..Presence::default()
    };
    let mut editor = Presence::default();
    let shown = registry
        .accept(
            1,
            &mut viewer,
            update(7, 1, r#"{"user":{"name":"V"},"viewer":false}"#),
            limits,
        )
        .unwrap();
    assert_eq!(
        &*shown.clients[&ClientID::new(7)].json,
        r#"{"user":{"name":"V"},"viewer":true}"#
    );
    for forged in [r#"{"viewer":true}"#, r#"{"viewer":"yes","user":{}}"#] {
        let shown = registry
            .accept(2, &mut editor, update(8, 1, forged), limits)
            .unwrap();
        assert!(
            !shown.clients[&ClientID::new(8)].json.contains("viewer"),
            "{forged}"
        );
        registry
            .accept(2, &mut editor, update(8, 2, "null"), limits)
            .unwrap();
        registry.removed.clear();
    }
}

#[test]
fn non_objects_and_oversize_states_are_refused() {
    let mut registry = Registry::default();
    let limits = PresenceLimits::default();
    let mut a = Presence::default();
    for bad in ["[1]", "1", "\"x\"", "{", "{}{}", "{\"a\":1} x"] {
        assert!(
            registry
                .accept(1, &mut a, update(7, 1, bad), limits)
                .is_err(),
            "{bad}"
        );
    }
    let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(limits.state_bytes));
    let error = registry
        .accept(1, &mut a, update(7, 1, &big), limits)
        .unwrap_err();
    assert_eq!(error.code, crate::protocol::close::TOO_BIG);
    assert_eq!(
        registry
            .counter()
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn removed_entries_are_forgotten_and_counts_are_bounded() {
    let mut registry = Registry::default();
    let limits = PresenceLimits {
        per_connection: 2,
        per_room: 3,
        state_bytes: 100,
    };
    let mut a = Presence::default();
    for round in 0..100u32 {
        registry
            .accept(1, &mut a, update(5, 2 * round + 1, "{}"), limits)
            .unwrap();
        registry
            .accept(1, &mut a, update(5, 2 * round + 2, "null"), limits)
            .unwrap();
    }
    assert_eq!(
        registry
            .counter()
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "removed entries do not accumulate"
    );
    registry
        .accept(1, &mut a, update(1, 1, "{}"), limits)
        .unwrap();
    registry
        .accept(1, &mut a, update(2, 1, "{}"), limits)
        .unwrap();
    assert!(registry
        .accept(1, &mut a, update(3, 1, "{}"), limits)
        .is_err());
    let mut b = Presence::default();
    registry
        .accept(2, &mut b, update(4, 1, "{}"), limits)
        .unwrap();
    let mut c = Presence::default();
    assert!(registry
        .accept(3, &mut c, update(6, 1, "{}"), limits)
        .is_err());
}

/// However many people read by the view link, editors still show: viewers have half the
/// room, one state per connection, and beyond that are not shown, never closed.
#[test]
fn viewers_never_crowd_out_editors() {
    let mut registry = Registry::default();
    let limits = PresenceLimits {
        per_connection: 4,
        per_room: 8,
        state_bytes: 1000,
    };
    let mut shown = 0;
    for conn in 1..=10u64 {
        let mut viewer = Presence {
            viewer: true,
            ..Presence::default()
        };
        for n in 0..4u64 {
            let accepted = registry
                .accept(
                    conn,
                    &mut viewer,
                    update(conn * 10 + n, 1, r#"{"user":{}}"#),
                    limits,
                )
                .expect("a viewer is never closed for being one too many");
            shown += accepted.clients.len();
        }
    }
    assert_eq!(shown, 4, "one per viewer connection, half the room");
    let mut editor = Presence::default();
    for n in 0..4u64 {
        let accepted = registry
            .accept(
                100,
                &mut editor,
                update(1000 + n, 1, r#"{"user":{}}"#),
                limits,
            )
            .unwrap();
        assert_eq!(accepted.clients.len(), 1, "editors are never crowded out");
    }
    // The room is full: a viewer arriving now is not shown, and not closed either.
    let mut late = Presence {
        viewer: true,
        ..Presence::default()
    };
    let accepted = registry
        .accept(300, &mut late, update(3000, 1, r#"{"user":{}}"#), limits)
        .expect("not closed");
    assert!(accepted.clients.is_empty());

    // Editors filled the room first: a viewer within its share finds it full, and is not
    // shown rather than closed.
    let mut registry = Registry::default();
    for (conn, count) in [(100u64, 4u64), (101, 4)] {
        let mut editor = Presence::default();
        for n in 0..count {
            registry
                .accept(
                    conn,
                    &mut editor,
                    update(conn * 10 + n, 1, r#"{"user":{}}"#),
                    limits,
                )
                .unwrap();
        }
    }
    let mut viewer = Presence {
        viewer: true,
        ..Presence::default()
    };
    let accepted = registry
        .accept(400, &mut viewer, update(4000, 1, r#"{"user":{}}"#), limits)
        .expect("a viewer in a full room is not closed");
    assert!(accepted.clients.is_empty());
}
