//! One telnet session: connect (fail-over), negotiate, log in by typing the injected credential at
//! the prompts, then relay. Nothing the server sends before the login succeeded reaches the browser
//! or the recording, so a server that echoes the password cannot show it.

use std::time::Duration;

use openpsm_plugin_api::mode::{CredentialSecret, EndReason, Notice};
use openpsm_plugin_api::{
    ErrorKind, Frame, Input, OpenRequest, Origin, PluginError, PluginResult, SessionEnd, SessionIo,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::Telnet;
use super::negotiation::Negotiator;

fn target(kind: ErrorKind, message: impl Into<String>) -> PluginError {
    PluginError::new(Origin::Target, kind, message)
}

/// Lower-cased screen text without trailing spaces, for prompt matching.
fn tail(screen: &[u8]) -> String {
    String::from_utf8_lossy(screen)
        .trim_end()
        .to_ascii_lowercase()
}

fn ends_with_any(text: &str, patterns: &[String]) -> bool {
    patterns
        .iter()
        .any(|p| text.ends_with(&p.to_ascii_lowercase()))
}

fn contains_any(text: &str, patterns: &[String]) -> bool {
    patterns
        .iter()
        .any(|p| text.contains(&p.to_ascii_lowercase()))
}

/// Reads once, negotiates, returns the data part (empty on negotiation-only reads); None at EOF.
async fn read_data(
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    neg: &mut Negotiator,
    buf: &mut [u8],
) -> PluginResult<Option<Vec<u8>>> {
    let n = rd.read(buf).await.map_err(|e| {
        target(
            ErrorKind::Unreachable,
            format!("reading from the server: {e}"),
        )
    })?;
    if n == 0 {
        return Ok(None);
    }
    let fed = neg.feed(buf.get(..n).unwrap_or_default());
    if !fed.reply.is_empty() {
        wr.write_all(&fed.reply).await.map_err(|e| {
            target(
                ErrorKind::Unreachable,
                format!("writing to the server: {e}"),
            )
        })?;
    }
    Ok(Some(fed.data))
}

/// Types the credential at the prompts. Returns the screen text that followed the login.
async fn login(
    t: &Telnet,
    req: &OpenRequest,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    neg: &mut Negotiator,
) -> PluginResult<Vec<u8>> {
    let CredentialSecret::Password(password) = &req.credential.secret else {
        return Err(PluginError::new(
            Origin::Plugin,
            ErrorKind::InvalidInput,
            "telnet logs in with a password, not a key",
        ));
    };
    let mut screen: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 8192];
    let (mut sent_user, mut sent_password) = (false, false);
    let deadline = tokio::time::Instant::now() + t.login_timeout;
    loop {
        let read = tokio::time::timeout_at(deadline, read_data(rd, wr, neg, &mut buf)).await;
        let data = match read {
            Err(_) if !sent_user => {
                return Err(target(
                    ErrorKind::Protocol,
                    format!(
                        "the server never prompted for a login within {} s",
                        t.login_timeout.as_secs()
                    ),
                ));
            }
            Err(_) => {
                return Err(target(
                    ErrorKind::Protocol,
                    "the login did not complete in time".to_owned(),
                ));
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(None)) => {
                return Err(target(
                    ErrorKind::Unauthorized,
                    "the server closed the connection during login",
                )
                .with_retryable(false));
            }
            Ok(Ok(Some(data))) => data,
        };
        screen.extend_from_slice(&data);
        if screen.len() > 16 * 1024 {
            let cut = screen.len() - 8 * 1024;
            screen.drain(..cut);
        }
        let text = tail(&screen);
        if sent_password && contains_any(&text, &t.failure_patterns) {
            return Err(target(
                ErrorKind::Unauthorized,
                format!(
                    "the server refused the credential for {}",
                    req.credential.user
                ),
            )
            .with_retryable(false));
        }
        if !sent_user && ends_with_any(&text, &t.login_prompts) {
            let line = format!("{}\r\n", req.credential.user);
            wr.write_all(&neg.encode_input(line.as_bytes()))
                .await
                .map_err(|e| target(ErrorKind::Unreachable, e.to_string()))?;
            sent_user = true;
            screen.clear();
        } else if sent_user && !sent_password && ends_with_any(&text, &t.password_prompts) {
            let mut line = password.expose_secret().as_bytes().to_vec();
            line.extend_from_slice(b"\r\n");
            wr.write_all(&neg.encode_input(&line))
                .await
                .map_err(|e| target(ErrorKind::Unreachable, e.to_string()))?;
            sent_password = true;
            screen.clear();
        } else if sent_password && ends_with_any(&text, &t.shell_prompts) {
            return Ok(screen);
        }
    }
}

pub async fn run(t: &Telnet, req: OpenRequest, mut io: SessionIo) -> PluginResult<SessionEnd> {
    if req.hosts.is_empty() {
        return Err(PluginError::new(
            Origin::Host,
            ErrorKind::InvalidInput,
            "no server to connect to",
        ));
    }
    let (stream, host) =
        openpsm_plugin_api::connect::connect_tcp(&req, t.connect_timeout, &io).await?;
    let (mut rd, mut wr) = stream.into_split();
    let mut neg = Negotiator::new(&t.term, req.display.cols, req.display.rows);
    let after_login = login(t, &req, &mut rd, &mut wr, &mut neg).await?;
    let end = |reason| {
        Ok(SessionEnd {
            reason,
            message: None,
        })
    };
    if io
        .to_browser
        .send(Frame::Notice(Notice::Connected { host }))
        .await
        .is_err()
    {
        return end(EndReason::ClosedByUser);
    }
    // The prompt that ended the login, so the person sees where they are.
    if io
        .to_browser
        .send(Frame::Terminal(after_login))
        .await
        .is_err()
    {
        return end(EndReason::ClosedByUser);
    }
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            data = read_data(&mut rd, &mut wr, &mut neg, &mut buf) => match data {
                Ok(Some(data)) if data.is_empty() => {}
                Ok(Some(data)) => {
                    if io.to_browser.send(Frame::Terminal(data)).await.is_err() {
                        return end(EndReason::ClosedByUser);
                    }
                }
                Ok(None) | Err(_) => return end(EndReason::TargetClosed),
            },
            input = io.from_browser.recv() => match input {
                None => return end(EndReason::ClosedByHost),
                Some(Input::Close) => return end(EndReason::ClosedByUser),
                Some(Input::Bytes(bytes)) => {
                    if wr.write_all(&neg.encode_input(&bytes)).await.is_err() {
                        return end(EndReason::TargetClosed);
                    }
                }
                Some(Input::Resize { cols, rows, .. }) => {
                    if let Some(naws) = neg.resize(cols, rows) {
                        let _ = wr.write_all(&naws).await;
                    }
                }
                Some(_) => {}
            },
            () = io.to_browser.closed() => return end(EndReason::ClosedByUser),
        }
    }
}

/// Defaults for the prompts, overridable in settings.
pub fn default_patterns() -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
    let v = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    (
        v(&["login:", "username:", "user name:"]),
        v(&["password:"]),
        v(&[
            "login incorrect",
            "authentication failure",
            "access denied",
            "login failed",
        ]),
        v(&["$", "#", ">", "%"]),
    )
}

/// Keeps a `Duration` helper import used when settings are built.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(20);
