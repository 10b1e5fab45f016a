//! Fail-over for connection modes that speak over a plain TCP connection: Server, then Server2,
//! then Server3, each with a timeout, the person told when one does not answer.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::error::{Origin, PluginError, PluginResult};
use crate::mode::{Frame, Notice, OpenRequest, SessionIo};

/// Connects to the first of the request's hosts that answers on its port; returns the stream and
/// the host that answered, or `Unreachable` (retryable) naming the last failure.
pub async fn connect_tcp(
    req: &OpenRequest,
    timeout: Duration,
    io: &SessionIo,
) -> PluginResult<(TcpStream, String)> {
    let mut last = String::from("no server configured");
    for host in &req.hosts {
        match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), req.port))).await {
            Ok(Ok(stream)) => return Ok((stream, host.clone())),
            Ok(Err(e)) => last = format!("{host}:{}: {e}", req.port),
            Err(_) => {
                last = format!(
                    "{host}:{}: no answer within {} s",
                    req.port,
                    timeout.as_secs()
                )
            }
        }
        let text = format!("{last}; trying the next server");
        let _ = io
            .to_browser
            .send(Frame::Notice(Notice::Message { text }))
            .await;
    }
    Err(PluginError::unreachable(
        Origin::Target,
        format!("no server answered: {last}"),
    ))
}
