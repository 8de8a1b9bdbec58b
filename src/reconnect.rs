//! The browser's decisions about its connection, as plain functions: how long to wait before
//! the next attempt, what to tell the person when the server refused something, and what to do
//! with the connection when the page wakes from sleep. The session (`client`) carries them out;
//! here native tests reach them.

use crate::protocol::close;

/// First reconnection delay ceiling, in milliseconds.
pub const BACKOFF_BASE_MS: f64 = 250.0;
/// Largest reconnection delay ceiling, in milliseconds.
pub const BACKOFF_CAP_MS: f64 = 10_000.0;
/// How often the page asks the server whether the line is alive.
pub const HEARTBEAT_MS: f64 = 15_000.0;
/// A connection the server has not spoken on for this long is given up as dead.
pub const DEAD_AFTER_MS: f64 = 45_000.0;
/// On waking, a connection silent for longer than a heartbeat period (plus the time an answer
/// takes) is replaced without asking: its answer is overdue.
pub const WAKE_SILENT_MS: f64 = HEARTBEAT_MS + 5_000.0;
/// On waking, how long an open connection has to answer a ping before it is replaced: a
/// server answers within a round trip, so the page is back within about a second either way.
pub const WAKE_PROBE_MS: f64 = 500.0;
/// On waking, a connection heard from this recently is left alone.
pub const WAKE_FRESH_MS: f64 = 2_000.0;

/// The ceiling of the random delay before attempt number `failures` (counted from 1): it
/// doubles from [`BACKOFF_BASE_MS`] with each failure up to [`BACKOFF_CAP_MS`]. The delay
/// itself is drawn uniformly below it (full jitter), so the clients of a restarted server come
/// back spread out, not at once.
pub fn backoff_ceiling_ms(failures: u32) -> f64 {
    let doublings = failures.clamp(1, 16) - 1;
    (BACKOFF_BASE_MS * 2f64.powi(doublings as i32)).min(BACKOFF_CAP_MS)
}

/// What to tell the person when the server closed the connection on purpose; `None` for
/// ordinary closes (going away, a dropped line), which only show as "offline".
pub fn refusal(code: u16, reason: &str) -> Option<String> {
    let what = match code {
        close::INTERNAL => "The server could not store or load this document",
        close::UNSUPPORTED_DATA | close::INVALID_PAYLOAD | close::POLICY | close::TOO_BIG => {
            "The server refused a change from this page"
        }
        _ => return None,
    };
    Some(if reason.is_empty() {
        format!("{what}. Retrying…")
    } else {
        format!("{what} ({reason}). Retrying…")
    })
}

/// What to do with the connection when the page may have slept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// There is none: connect now.
    Connect,
    /// Silent for longer than a heartbeat period: its answer is overdue, replace it now.
    Replace,
    /// Ping it, and replace it if no answer comes within [`WAKE_PROBE_MS`].
    Probe,
    /// Heard from just now, or already being asked.
    Wait,
}

/// Decides [`Wake`] for a connection that is `open` or not, that the server last spoke on
/// `silent_ms` ago, and that is or is not `probing` already.
pub fn on_wake(open: bool, silent_ms: f64, probing: bool) -> Wake {
    if !open {
        Wake::Connect
    } else if silent_ms < WAKE_FRESH_MS {
        Wake::Wait
    } else if silent_ms >= WAKE_SILENT_MS {
        Wake::Replace
    } else if probing {
        Wake::Wait
    } else {
        Wake::Probe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_ceiling_doubles_from_a_quarter_second_to_ten_seconds() {
        let ceilings: Vec<f64> = (1..=8).map(backoff_ceiling_ms).collect();
        assert_eq!(
            ceilings,
            [250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 10_000.0, 10_000.0]
        );
        assert_eq!(backoff_ceiling_ms(0), 250.0);
        assert_eq!(backoff_ceiling_ms(u32::MAX), 10_000.0);
    }

    #[test]
    fn refusals_say_what_happened_and_ordinary_closes_say_nothing() {
        assert_eq!(
            refusal(close::TOO_BIG, "document would exceed its size limit").as_deref(),
            Some("The server refused a change from this page (document would exceed its size limit). Retrying…")
        );
        assert_eq!(
            refusal(close::INTERNAL, "").as_deref(),
            Some("The server could not store or load this document. Retrying…")
        );
        for code in [
            close::POLICY,
            close::INVALID_PAYLOAD,
            close::UNSUPPORTED_DATA,
        ] {
            assert!(refusal(code, "x")
                .unwrap()
                .starts_with("The server refused"));
        }
        for code in [1000, 1001, 1006, 1013] {
            assert_eq!(refusal(code, "bye"), None, "{code}");
        }
    }

    #[test]
    fn a_waking_page_keeps_a_fresh_line_probes_a_quiet_one_and_replaces_a_silent_one() {
        assert_eq!(on_wake(false, 0.0, false), Wake::Connect);
        assert_eq!(on_wake(true, 500.0, false), Wake::Wait);
        assert_eq!(on_wake(true, 5_000.0, false), Wake::Probe);
        assert_eq!(on_wake(true, 5_000.0, true), Wake::Wait);
        assert_eq!(on_wake(true, WAKE_SILENT_MS, false), Wake::Replace);
        assert_eq!(on_wake(true, 25_000.0, false), Wake::Replace);
        // Past the heartbeat's own verdict, it is replaced too.
        assert_eq!(on_wake(true, DEAD_AFTER_MS + 1.0, false), Wake::Replace);
    }
}
