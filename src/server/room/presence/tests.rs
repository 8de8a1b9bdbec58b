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
