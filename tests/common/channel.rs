//! A WebSocket made of channels, for running a session with no I/O: under tokio's paused
//! clock, or with a peer that reads exactly when the test says.

use tandem::server::socket::{
    Connection, Error as SocketError, Lingered, Message as ServerMessage,
};

/// A socket made of channels, so the session runs under tokio's paused clock with no I/O.
pub struct ChannelSocket {
    pub incoming: tokio::sync::mpsc::Receiver<Result<ServerMessage, SocketError>>,
    pub outgoing: tokio_util::sync::PollSender<ServerMessage>,
}

type Ready<T> = std::task::Poll<T>;
type Cx<'a, 'b> = &'a mut std::task::Context<'b>;

impl futures_util::Stream for ChannelSocket {
    type Item = Result<ServerMessage, SocketError>;
    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: Cx) -> Ready<Option<Self::Item>> {
        self.incoming.poll_recv(cx)
    }
}

impl futures_util::Sink<ServerMessage> for ChannelSocket {
    type Error = SocketError;
    fn poll_ready(mut self: std::pin::Pin<&mut Self>, cx: Cx) -> Ready<Result<(), Self::Error>> {
        self.outgoing
            .poll_reserve(cx)
            .map_err(|_| SocketError::ConnectionClosed)
    }
    fn start_send(
        mut self: std::pin::Pin<&mut Self>,
        item: ServerMessage,
    ) -> Result<(), Self::Error> {
        self.outgoing
            .send_item(item)
            .map_err(|_| SocketError::ConnectionClosed)
    }
    fn poll_flush(self: std::pin::Pin<&mut Self>, _: Cx) -> Ready<Result<(), Self::Error>> {
        Ready::Ready(Ok(()))
    }
    fn poll_close(mut self: std::pin::Pin<&mut Self>, _: Cx) -> Ready<Result<(), Self::Error>> {
        self.outgoing.close();
        Ready::Ready(Ok(()))
    }
}

impl Connection for ChannelSocket {
    /// Reads until the peer's close or the end of the channel; channels carry no byte count.
    async fn linger(&mut self, _max_bytes: u64) -> Lingered {
        loop {
            match self.incoming.recv().await {
                Some(Ok(ServerMessage::Close(_))) => return Lingered::Answered,
                Some(_) => continue,
                None => return Lingered::Ended,
            }
        }
    }
}
