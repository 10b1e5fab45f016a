//! One SSH session: connect (with fail-over), check the host key, authenticate, run a shell in a
//! pty, relay until one side ends.

use std::sync::{Arc, Mutex};

use openpsm_plugin_api::mode::{CredentialSecret, EndReason, Notice};
use openpsm_plugin_api::{
    ErrorKind, Frame, Input, OpenRequest, Origin, PluginError, PluginResult, SessionEnd, SessionIo,
};
use russh::client::{self, AuthResult, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};

use super::Ssh;

/// Checks the server's key against the pinned ones and remembers what it saw.
struct KeyCheck {
    pinned: Vec<String>,
    seen: Arc<Mutex<Option<String>>>,
}

fn fingerprint(key: &PublicKeyOrCertificate) -> String {
    match key {
        PublicKeyOrCertificate::PublicKey { key, .. } => {
            key.fingerprint(HashAlg::Sha256).to_string()
        }
        PublicKeyOrCertificate::Certificate(cert) => {
            cert.public_key().fingerprint(HashAlg::Sha256).to_string()
        }
    }
}

impl client::Handler for KeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let print = fingerprint(key);
        let accepted = self.pinned.is_empty() || self.pinned.iter().any(|p| p == &print);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(print);
        }
        Ok(accepted)
    }
}

fn target(kind: ErrorKind, message: impl Into<String>) -> PluginError {
    PluginError::new(Origin::Target, kind, message)
}

fn end(reason: EndReason, message: Option<String>) -> PluginResult<SessionEnd> {
    Ok(SessionEnd { reason, message })
}

/// Connects to the first host that answers; a host whose key is not pinned is refused at once
/// (trying the next host would hide an attack).
async fn connect(
    ssh: &Ssh,
    req: &OpenRequest,
    io: &SessionIo,
) -> PluginResult<(Handle<KeyCheck>, String, String)> {
    let config = Arc::new(client::Config {
        keepalive_interval: Some(ssh.keepalive),
        keepalive_max: 3,
        inactivity_timeout: None,
        ..Default::default()
    });
    let mut last = String::from("no server configured");
    for host in &req.hosts {
        let seen = Arc::new(Mutex::new(None));
        let handler = KeyCheck {
            pinned: req.pinned_keys.clone(),
            seen: seen.clone(),
        };
        let attempt = tokio::time::timeout(
            ssh.connect_timeout,
            client::connect(config.clone(), (host.as_str(), req.port), handler),
        )
        .await;
        let seen_print = seen.lock().ok().and_then(|s| s.clone());
        match attempt {
            Ok(Ok(handle)) => {
                let print = seen_print.unwrap_or_default();
                return Ok((handle, host.clone(), print));
            }
            Ok(Err(russh::Error::UnknownKey)) => {
                return Err(target(
                    ErrorKind::HostKeyMismatch,
                    format!(
                        "the host key of {host}:{} ({}) is not the pinned one: refusing to connect",
                        req.port,
                        seen_print.unwrap_or_else(|| "unknown".into())
                    ),
                ));
            }
            Ok(Err(e)) => last = format!("{host}:{}: {e}", req.port),
            Err(_) => {
                last = format!(
                    "{host}:{}: no answer within {} s",
                    req.port,
                    ssh.connect_timeout.as_secs()
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

fn user_name(req: &OpenRequest) -> String {
    // SSH has no domain field: `DOMAIN\user` becomes `user@DOMAIN`, as Windows OpenSSH expects.
    match &req.credential.domain {
        Some(domain) if !domain.is_empty() => format!("{}@{domain}", req.credential.user),
        _ => req.credential.user.clone(),
    }
}

async fn authenticate(
    handle: &mut Handle<KeyCheck>,
    req: &OpenRequest,
    host: &str,
) -> PluginResult<()> {
    let user = user_name(req);
    let refused = || {
        target(
            ErrorKind::Unauthorized,
            format!("{host} refused the credential for {user}"),
        )
        .with_retryable(false)
    };
    let protocol = |e: russh::Error| {
        target(
            ErrorKind::Protocol,
            format!("authentication with {host} failed: {e}"),
        )
    };
    match &req.credential.secret {
        CredentialSecret::Password(password) => {
            let result = handle
                .authenticate_password(user.clone(), password.expose_secret())
                .await
                .map_err(protocol)?;
            if result.success() {
                return Ok(());
            }
            // PAM servers often offer only keyboard-interactive: answer its password prompts.
            let allows_kbd = matches!(&result, AuthResult::Failure { remaining_methods, .. }
                if remaining_methods.iter().any(|m| matches!(m, russh::MethodKind::KeyboardInteractive)));
            if !allows_kbd {
                return Err(refused());
            }
            let mut reply = handle
                .authenticate_keyboard_interactive_start(user.clone(), None)
                .await
                .map_err(protocol)?;
            for _ in 0..5 {
                match reply {
                    KeyboardInteractiveAuthResponse::Success => return Ok(()),
                    KeyboardInteractiveAuthResponse::Failure { .. } => return Err(refused()),
                    KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                        let answers = prompts
                            .iter()
                            .map(|_| password.expose_secret().to_owned())
                            .collect();
                        reply = handle
                            .authenticate_keyboard_interactive_respond(answers)
                            .await
                            .map_err(protocol)?;
                    }
                }
            }
            Err(refused())
        }
        CredentialSecret::PrivateKey(text) => {
            let key = russh::keys::decode_secret_key(text.expose_secret(), None).map_err(|_| {
                PluginError::new(
                    Origin::Plugin,
                    ErrorKind::InvalidInput,
                    "the private key cannot be read",
                )
            })?;
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(protocol)?
                .flatten();
            let result = handle
                .authenticate_publickey(
                    user.clone(),
                    PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                )
                .await
                .map_err(protocol)?;
            if result.success() {
                Ok(())
            } else {
                Err(refused())
            }
        }
    }
}

pub async fn run(ssh: &Ssh, req: OpenRequest, mut io: SessionIo) -> PluginResult<SessionEnd> {
    if req.hosts.is_empty() {
        return Err(PluginError::new(
            Origin::Host,
            ErrorKind::InvalidInput,
            "no server to connect to",
        ));
    }
    let (mut handle, host, print) = connect(ssh, &req, &io).await?;
    let seen = Notice::HostKeySeen {
        host: host.clone(),
        fingerprint: print,
    };
    if io.to_browser.send(Frame::Notice(seen)).await.is_err() {
        return end(EndReason::ClosedByUser, None);
    }
    authenticate(&mut handle, &req, &host).await?;
    let channel_error = |e: russh::Error| {
        target(
            ErrorKind::Protocol,
            format!("{host}: opening the shell failed: {e}"),
        )
    };
    let mut channel = handle.channel_open_session().await.map_err(channel_error)?;
    let size = req.display;
    channel
        .request_pty(
            false,
            &ssh.term,
            u32::from(size.cols),
            u32::from(size.rows),
            0,
            0,
            &[],
        )
        .await
        .map_err(channel_error)?;
    channel.request_shell(false).await.map_err(channel_error)?;
    if io
        .to_browser
        .send(Frame::Notice(Notice::Connected { host: host.clone() }))
        .await
        .is_err()
    {
        return end(EndReason::ClosedByUser, None);
    }
    let mut exit: Option<u32> = None;
    let outcome = loop {
        tokio::select! {
            msg = channel.wait() => match msg {
                Some(ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. }) => {
                    if io.to_browser.send(Frame::Terminal(data.to_vec())).await.is_err() {
                        break (EndReason::ClosedByUser, None);
                    }
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => exit = Some(exit_status),
                // The exit status follows EOF: wait for the channel to close.
                Some(ChannelMsg::Eof) => {}
                Some(ChannelMsg::Close) | None => {
                    break (EndReason::TargetClosed, exit.map(|code| format!("the shell exited with status {code}")));
                }
                Some(_) => {}
            },
            input = io.from_browser.recv() => match input {
                Some(Input::Bytes(bytes)) => {
                    if channel.data(bytes.as_slice()).await.is_err() {
                        break (EndReason::TargetClosed, None);
                    }
                }
                Some(Input::Resize { cols, rows, .. }) => {
                    let _ = channel.window_change(u32::from(cols), u32::from(rows), 0, 0).await;
                }
                Some(Input::Close) => break (EndReason::ClosedByUser, None),
                Some(_) => {}
                None => break (EndReason::ClosedByHost, None),
            },
            () = io.to_browser.closed() => break (EndReason::ClosedByUser, None),
        }
    };
    let _ = channel.close().await;
    let _ = handle
        .disconnect(Disconnect::ByApplication, "session ended", "en")
        .await;
    end(outcome.0, outcome.1)
}
