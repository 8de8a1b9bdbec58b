//! The browser's decisions about its connection, as plain functions: how long to wait before
//! the next attempt, what to tell the person when the server refused something, when to stop
//! trying for good, and what to do with the connection when the page wakes from sleep. The
//! session (`client`) carries them out; here native tests reach them.

use crate::protocol::close;

/// First reconnection delay ceiling, in milliseconds.
pub const BACKOFF_BASE_MS: f64 = 250.0;
/// Largest reconnection delay ceiling, in milliseconds.
pub const BACKOFF_CAP_MS: f64 = 10_000.0;
/// How often the page asks the server whether its line is alive, and what it concludes from
/// silence. The server chooses the period (`--heartbeat-ms`) and tells the page with the
/// document; everything else follows from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heartbeat {
    period_ms: f64,
}

impl Heartbeat {
    /// The default period, in milliseconds.
    pub const DEFAULT_MS: u32 = 15_000;
    /// The shortest period a server may ask for.
    pub const MIN_MS: u32 = 100;
    /// The longest: a period and the time its ping has to be answered, after which the page
    /// gives up, stay within the server's own 60 s silence limit.
    pub const MAX_MS: u32 = 20_000;

    /// A heartbeat every `period_ms` milliseconds, held within [`Self::MIN_MS`] and
    /// [`Self::MAX_MS`] whatever the page was told.
    pub fn every(period_ms: u32) -> Self {
        Heartbeat {
            period_ms: f64::from(period_ms.clamp(Self::MIN_MS, Self::MAX_MS)),
        }
    }

    /// How long after the last ping the next one is due.
    pub fn period_ms(self) -> f64 {
        self.period_ms
    }

    /// How often a page clock that ticks every `page_tick_ms` must tick to keep this
    /// heartbeat: never less often than once a period.
    pub fn tick_ms(self, page_tick_ms: f64) -> f64 {
        page_tick_ms.min(self.period_ms)
    }

    /// Whether a ping is due `since_ms` after the last one, on a clock ticking every
    /// `tick_ms`: on the tick nearest its time rather than the first one after it, so a timer
    /// firing a little early does not stretch a period by a whole tick. Not while the last one
    /// is `unanswered`: the time it has to be answered runs from when it was sent.
    pub fn ping_due(self, since_ms: f64, tick_ms: f64, unanswered: bool) -> bool {
        !unanswered && since_ms >= self.period_ms - tick_ms / 2.0
    }

    /// How long a ping may go unanswered before the line is given up as dead: two periods,
    /// and never less than [`MIN_ANSWER_MS`] (a large answer on a slow line takes a while).
    pub fn answer_within_ms(self) -> f64 {
        (2.0 * self.period_ms).max(MIN_ANSWER_MS)
    }

    /// Whether the line is dead at `now`, with the last ping sent at `pinged_at` and nothing
    /// heard since if `unanswered`: a ping has gone unanswered for [`Self::answer_within_ms`].
    /// Silence alone is not enough: the timers of a hidden tab may run only once a minute,
    /// and the answers to its pings arrive in between.
    pub fn line_dead(self, unanswered: bool, pinged_at: f64, now: f64) -> bool {
        unanswered && now - pinged_at >= self.answer_within_ms()
    }

    /// On waking, a connection silent for longer than a period (plus the time an answer
    /// takes) is replaced without asking: its answer is overdue.
    pub fn wake_silent_ms(self) -> f64 {
        self.period_ms + WAKE_ANSWER_MS
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat::every(Self::DEFAULT_MS)
    }
}

/// The shortest time a ping is given to be answered.
pub const MIN_ANSWER_MS: f64 = 10_000.0;

/// How long a heartbeat's answer may take before it counts as overdue on waking.
pub const WAKE_ANSWER_MS: f64 = 5_000.0;
/// On waking, how long an open connection has to answer a ping before it is replaced: a
/// server answers within a round trip, so the page is back within about a second either way.
pub const WAKE_PROBE_MS: f64 = 500.0;
/// On waking, a connection heard from this recently is left alone.
pub const WAKE_FRESH_MS: f64 = 2_000.0;

/// A connection live this long had come back for good: losing it starts the backoff afresh.
/// One that is refused soon after its handshake (an editor id still claimed elsewhere, 1013)
/// goes on backing off instead of retrying every quarter of a second.
pub const STEADY_MS: f64 = 10_000.0;

/// The failures to count after losing a connection that was live for `live_ms` (`None`: it
/// never completed its handshake), before this loss is added.
pub fn failures_after_loss(failures: u32, live_ms: Option<f64>) -> u32 {
    match live_ms {
        Some(live) if live >= STEADY_MS => 0,
        _ => failures,
    }
}

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

/// Why the server closed a page's connection for good. Reconnecting would only be refused
/// again (the link opens nothing any more), so the page stops trying and says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The link the page was opened with was reset.
    LinkReset,
    /// The document was deleted.
    Deleted,
}

impl Ending {
    /// The ending a close code announces, if any; every other close is retried.
    pub fn of_close(code: u16) -> Option<Ending> {
        match code {
            close::LINK_RESET => Some(Ending::LinkReset),
            close::DELETED => Some(Ending::Deleted),
            _ => None,
        }
    }
}

/// What to do with the connection when the page may have slept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// There is none: connect now.
    Connect,
    /// Silent for longer than a heartbeat period with a ping unanswered: its answer is overdue,
    /// replace it now.
    Replace,
    /// Ping it, and replace it if no answer comes within [`WAKE_PROBE_MS`].
    Probe,
    /// Heard from just now, or already being asked.
    Wait,
}

/// Decides [`Wake`] for a connection that is `open` or not, that the server last spoke on
/// `silent_ms` ago, that has a ping `unanswered` or not, and that is or is not `probing`
/// already. A long silence without a ping unanswered is the silence of a tab whose timers were
/// slowed while hidden, not of a dead line: it is probed, not replaced.
pub fn on_wake(
    heartbeat: Heartbeat,
    open: bool,
    silent_ms: f64,
    unanswered: bool,
    probing: bool,
) -> Wake {
    if !open {
        Wake::Connect
    } else if silent_ms < WAKE_FRESH_MS {
        Wake::Wait
    } else if silent_ms >= heartbeat.wake_silent_ms() && unanswered {
        Wake::Replace
    } else if probing {
        Wake::Wait
    } else {
        Wake::Probe
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_connection_that_lasted_starts_the_backoff_afresh() {
        assert_eq!(failures_after_loss(5, Some(STEADY_MS)), 0);
        assert_eq!(failures_after_loss(5, Some(STEADY_MS * 10.0)), 0);
        // Refused right after its handshake: the next attempt waits longer, not less.
        assert_eq!(failures_after_loss(5, Some(300.0)), 5);
        assert_eq!(failures_after_loss(5, None), 5);
        assert!(backoff_ceiling_ms(failures_after_loss(5, Some(300.0)) + 1) > BACKOFF_BASE_MS);
    }

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
    fn a_reset_link_and_a_deleted_document_end_the_session_and_nothing_else_does() {
        assert_eq!(Ending::of_close(close::LINK_RESET), Some(Ending::LinkReset));
        assert_eq!(Ending::of_close(close::DELETED), Some(Ending::Deleted));
        for code in [
            close::GOING_AWAY,
            close::ABNORMAL,
            close::POLICY,
            close::NO_HEARTBEAT,
        ] {
            assert_eq!(Ending::of_close(code), None);
        }
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
        let beat = Heartbeat::default();
        assert_eq!(on_wake(beat, false, 0.0, false, false), Wake::Connect);
        assert_eq!(on_wake(beat, true, 500.0, false, false), Wake::Wait);
        assert_eq!(on_wake(beat, true, 5_000.0, false, false), Wake::Probe);
        assert_eq!(on_wake(beat, true, 5_000.0, true, false), Wake::Probe);
        assert_eq!(on_wake(beat, true, 5_000.0, false, true), Wake::Wait);
        assert_eq!(on_wake(beat, true, 20_000.0, true, false), Wake::Replace);
        assert_eq!(on_wake(beat, true, 45_001.0, true, false), Wake::Replace);
        // A hidden tab whose slowed timers last pinged a minute ago, answered: asked, not
        // replaced.
        assert_eq!(on_wake(beat, true, 60_000.0, false, false), Wake::Probe);
        // A shorter heartbeat makes silence overdue sooner.
        let quick = Heartbeat::every(1_000);
        assert_eq!(on_wake(quick, true, 5_000.0, true, false), Wake::Probe);
        assert_eq!(on_wake(quick, true, 6_000.0, true, false), Wake::Replace);
    }

    #[test]
    fn a_line_is_dead_only_when_a_ping_goes_unanswered() {
        let beat = Heartbeat::default();
        assert_eq!(beat.answer_within_ms(), 30_000.0);
        // Pinged 15 s after the last word, unanswered for 30 s: 45 s of silence in all.
        assert!(!beat.line_dead(true, 15_000.0, 44_999.0));
        assert!(beat.line_dead(true, 15_000.0, 45_000.0));
        // Answered: however long ago (a hidden tab's timers), not dead.
        assert!(!beat.line_dead(false, 15_000.0, 600_000.0));
        // A short heartbeat still gives an answer ten seconds.
        let quick = Heartbeat::every(250);
        assert_eq!(quick.answer_within_ms(), 10_000.0);
        assert!(!quick.line_dead(true, 250.0, 5_000.0));
        assert!(quick.line_dead(true, 250.0, 10_250.0));
    }

    #[test]
    fn a_ping_goes_on_the_tick_nearest_its_time() {
        let beat = Heartbeat::default();
        let tick = beat.tick_ms(500.0);
        assert_eq!(tick, 500.0);
        assert!(!beat.ping_due(14_500.0, tick, false));
        assert!(beat.ping_due(14_800.0, tick, false));
        assert!(beat.ping_due(15_000.0, tick, false));
        // One ping unanswered is not followed by another: its answer time would start over.
        assert!(!beat.ping_due(40_000.0, tick, true));
        // A period of one tick: a tick that comes a millisecond early still pings.
        let quick = Heartbeat::every(250);
        let tick = quick.tick_ms(500.0);
        assert_eq!(tick, 250.0);
        assert!(quick.ping_due(249.0, tick, false));
        assert!(!quick.ping_due(100.0, tick, false));
    }

    #[test]
    fn a_heartbeat_from_the_server_is_held_within_its_bounds() {
        assert_eq!(Heartbeat::every(250).period_ms(), 250.0);
        // Zero would ping on every tick and call every line dead at once; an hour would leave
        // a dead line unnoticed past the server's own silence limit.
        assert_eq!(Heartbeat::every(0).period_ms(), 100.0);
        assert_eq!(Heartbeat::every(u32::MAX).period_ms(), 20_000.0);
        let slowest = Heartbeat::every(u32::MAX);
        assert!(slowest.period_ms() + slowest.answer_within_ms() <= 60_000.0);
    }
}
