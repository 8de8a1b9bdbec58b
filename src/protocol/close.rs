//! WebSocket close codes Tandem uses, shared by the server that sends them and the page that
//! explains them. The standard ones (RFC 6455 §7.4.1) mean what any client library expects;
//! 4000 is Tandem's own.

/// The server is shutting down.
pub const GOING_AWAY: u16 = 1001;
/// A frame that breaks the WebSocket protocol itself.
pub const PROTOCOL_ERROR: u16 = 1002;
/// A text frame (the protocol is binary) or an unknown message type.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// The connection ended without a close frame (reported by clients, never sent).
pub const ABNORMAL: u16 = 1006;
/// A frame that does not decode, or an update that cannot be integrated.
pub const INVALID_PAYLOAD: u16 = 1007;
/// A rule of the server was broken: too many messages, someone else's presence, too many
/// presence entries.
pub const POLICY: u16 = 1008;
/// A message or a document larger than the configured limit.
pub const TOO_BIG: u16 = 1009;
/// Something failed inside the server: storage, or the document's replica.
pub const INTERNAL: u16 = 1011;
/// The connection fell behind; reconnecting resynchronises it.
pub const TRY_AGAIN_LATER: u16 = 1013;
/// The peer stopped answering pings.
pub const NO_HEARTBEAT: u16 = 4000;
/// The link the connection was opened with was reset: it opens nothing any more. The page
/// says so and stops reconnecting; whoever shared the document has the new link.
pub const LINK_RESET: u16 = 4001;
/// The document was deleted: its links answer 410 Gone from then on. The page says so and
/// stops reconnecting.
pub const DELETED: u16 = 4002;
