//! Live terminal sessions: a redeemed launch token becomes a connection-mode session relayed to
//! the browser's WebSocket, recorded, and ended in one place whatever ended it.
//!
//! **Architecture invariant**: a session the policy records never runs unrecorded: if the
//! recording cannot be created or written, the session ends with an error.

pub mod display;
pub mod live;
pub mod recording;
pub mod typescript;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use openpsm_plugin_api::mode::{
    CredentialSecret, DisplaySize, EndReason, InjectedCredential, Notice, SessionPolicy,
};
use openpsm_plugin_api::{
    Frame, Input, OpenRequest, PluginInstance, SealedRecording, SecretText, SessionIo,
};
use serde_json::json;

use crate::store::unix_now;
use crate::workflow::{Engine, Launch};
use recording::Asciicast;
use typescript::Typescript;

/// Frames buffered between the mode and the browser; a slow browser stalls the target here.
const BUFFER: usize = 64;
/// How long the last words to a browser (error, end) may take.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(5);

fn split_user(user: &str) -> (String, Option<String>) {
    match user.split_once('\\') {
        Some((domain, name)) => (name.to_owned(), Some(domain.to_owned())),
        None => (user.to_owned(), None),
    }
}

async fn text(ws: &mut WebSocket, value: serde_json::Value) -> bool {
    ws.send(Message::Text(Utf8Bytes::from(value.to_string())))
        .await
        .is_ok()
}

/// Runs the session of a redeemed launch on `ws` until it ends, then ends it everywhere.
pub async fn run_terminal(
    engine: Arc<Engine>,
    live: Arc<live::Live>,
    launch: Launch,
    ws: WebSocket,
) {
    run_session(engine, live, launch, ws, false).await;
}

/// The same for the display channel (Guacamole instructions in text messages).
pub async fn run_display(
    engine: Arc<Engine>,
    live: Arc<live::Live>,
    launch: Launch,
    ws: WebSocket,
) {
    run_session(engine, live, launch, ws, true).await;
}

async fn farewell(ws: &mut WebSocket, display: bool, error: bool, message: &str) {
    if display {
        // Guacamole status: 0x0200 server error, 0x020B session closed.
        let code = if error { "512" } else { "523" };
        let i = openpsm_plugin_api::guac::Instruction::new("error", &[message, code]).encode()
            + &openpsm_plugin_api::guac::Instruction::new("disconnect", &[]).encode();
        let _ = ws.send(Message::Text(Utf8Bytes::from(i))).await;
    } else if error {
        let _ = text(ws, json!({"error": message})).await;
    } else {
        let _ = text(ws, json!({"ended": message})).await;
    }
}

async fn run_session(
    engine: Arc<Engine>,
    live: Arc<live::Live>,
    launch: Launch,
    mut ws: WebSocket,
    display: bool,
) {
    let flow = launch.flow;
    let session = flow.session;
    let mut registration = live.register(session);
    let reason = match relay(
        &engine,
        &flow,
        &launch.claims,
        &mut ws,
        &mut registration.stop,
        display,
    )
    .await
    {
        Ok(message) => message,
        Err(message) => {
            tracing::warn!(%session, flow = %flow.id, "session failed: {message}");
            farewell(&mut ws, display, true, &message).await;
            message
        }
    };
    if let Err(e) = engine.end_launched(&flow.id, &reason).await {
        tracing::error!(%session, "ending the session failed: {e}");
    }
    if let Err(e) = engine
        .app
        .store
        .session_ended(&session.to_string(), unix_now())
        .await
    {
        tracing::error!(%session, "marking the session ended failed: {e}");
    }
    let _ = engine
        .audit_session(
            &flow.person,
            "session.ended",
            json!({"session": session, "flow": flow.id, "reason": reason}),
        )
        .await;
    farewell(&mut ws, display, false, &reason).await;
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, ws.send(Message::Close(None))).await;
    drop(registration);
}

/// The session itself; Ok carries why it ended, Err what went wrong.
async fn relay(
    engine: &Engine,
    flow: &crate::workflow::state::Flow,
    claims: &crate::token::LaunchClaims,
    ws: &mut WebSocket,
    stop: &mut tokio::sync::watch::Receiver<Option<String>>,
    display: bool,
) -> Result<String, String> {
    let injected = flow
        .injected
        .clone()
        .ok_or("the flow has no checked-out credential")?;
    let mode_id = flow.mode.clone().ok_or("the flow has no connection mode")?;
    let mode = engine
        .registry_mode(&mode_id)
        .ok_or_else(|| format!("the connection mode {mode_id} is not available"))?;
    let computer = flow.computer.to_string();
    let pinned: Vec<String> = engine
        .app
        .store
        .host_keys(&computer)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    let policy = engine.policy_of(flow).map_err(|e| e.to_string())?;
    let session_policy = SessionPolicy {
        read_only: false,
        allow_copy: policy.clipboard_copy,
        allow_paste: policy.clipboard_paste,
    };
    let record_keys = policy.record_keys;
    if display != (mode.mode_info().channel == openpsm_plugin_api::Channel::Display) {
        return Err(format!(
            "the connection mode {mode_id} speaks the other channel"
        ));
    }
    let (user, domain) = split_user(&injected.user_name);
    let secret = SecretText::new(injected.secret.expose_secret());
    let request = OpenRequest {
        session: flow.session,
        hosts: injected.hosts.clone(),
        port: injected.port.unwrap_or(mode.mode_info().default_port),
        credential: InjectedCredential {
            user,
            domain,
            secret: if injected.is_key {
                CredentialSecret::PrivateKey(secret)
            } else {
                CredentialSecret::Password(secret)
            },
        },
        display: DisplaySize {
            width: flow.width.unwrap_or(1024),
            height: flow.height.unwrap_or(768),
            dpi: flow.dpi.unwrap_or(96),
            ..DisplaySize::default()
        },
        policy: session_policy,
        pinned_keys: pinned,
        settings: serde_json::Value::Null,
    };
    let rec_dir = engine
        .app
        .config
        .data_dir
        .join("recordings-open")
        .join(flow.session.to_string());
    let mut guac = if injected.record && display {
        Some(
            display::GuacRecording::create(&rec_dir.join("session.guac"))
                .await
                .map_err(|e| {
                    format!(
                        "the session must be recorded, but the recording cannot be created: {}",
                        e.reason
                    )
                })?,
        )
    } else {
        None
    };
    let mut browser = display::BrowserState::default();
    let mut cast = if injected.record && !display {
        let path = rec_dir.join("session.cast");
        Some(
            Asciicast::create(
                &path,
                request.display.cols,
                request.display.rows,
                unix_now(),
            )
            .await
            .map_err(|e| {
                format!(
                    "the session must be recorded, but the recording cannot be created: {}",
                    e.reason
                )
            })?,
        )
    } else {
        None
    };
    let wants_typescript = injected.record && !display && policy.typescript;
    let mut script = if wants_typescript {
        Some(
            Typescript::create(
                &rec_dir,
                "session.typescript",
                &rfc3339_now(),
                &flow.session.to_string(),
            )
            .await
            .map_err(|e| {
                format!(
                    "the session must be recorded, but the typescript cannot be created: {}",
                    e.reason
                )
            })?,
        )
    } else {
        None
    };
    engine
        .audit_session(&flow.person, "session.started", json!({"session": flow.session, "flow": flow.id, "mode": mode_id, "hosts": request.hosts, "record": injected.record, "token": claims.id}))
        .await
        .map_err(|e| e.to_string())?;
    engine
        .app
        .store
        .session_started(
            &flow.session.to_string(),
            &flow.id,
            &flow.person.to_string(),
            &computer,
            &mode_id,
            &engine.app.config.node(),
            unix_now(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(
            u64::try_from(engine.session_deadline(flow) - unix_now()).unwrap_or(0),
        );
    let send_timeout = Duration::from_secs(engine.app.config.sessions.browser_send_timeout_secs);
    let idle_limit = match engine.app.config.sessions.idle_timeout_secs {
        0 => Duration::from_secs(100 * 365 * 86_400),
        secs => Duration::from_secs(secs),
    };
    let mut last_activity = tokio::time::Instant::now();
    let (io, mut ends) = SessionIo::pair(BUFFER);
    let mut run = tokio::spawn(async move { mode.run(request, io).await });
    let mut inputs = Some(ends.inputs);
    let outcome: Result<String, String> = loop {
        tokio::select! {
            frame = ends.frames.recv() => match frame {
                Some(Frame::Terminal(bytes)) => {
                    last_activity = tokio::time::Instant::now();
                    if let Some(c) = cast.as_mut()
                        && let Err(e) = c.output(&bytes).await
                    {
                        break Err(format!("the recording failed, so the session was ended: {}", e.reason));
                    }
                    if let Some(t) = script.as_mut()
                        && let Err(e) = t.output(&bytes).await
                    {
                        break Err(format!("the recording failed, so the session was ended: {}", e.reason));
                    }
                    match tokio::time::timeout(send_timeout, ws.send(Message::Binary(bytes.into()))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => { inputs = None; }
                        Err(_) => break Err("the browser stopped reading; the session was ended".into()),
                    }
                }
                // Clipboard text from the target: to the browser only where the policy allows
                // copying, and never into the recording (as guacd does).
                Some(Frame::Clipboard(text)) => {
                    if display && session_policy.allow_copy {
                        // Stream 65: modes draw images on streams 1 to 64.
                        let stream = openpsm_plugin_api::guac::clipboard(
                            "65",
                            &openpsm_plugin_api::guac::encode_for_client(&text),
                        );
                        if tokio::time::timeout(send_timeout, ws.send(Message::Text(Utf8Bytes::from(stream)))).await.is_err() {
                            break Err("the browser stopped reading; the session was ended".into());
                        }
                    }
                }
                Some(Frame::Notice(notice)) => {
                    engine.notice(flow, &notice).await?;
                    // The display channel carries Guacamole instructions only.
                    if !display {
                        let _ = text(ws, json!({"notice": notice})).await;
                    }
                }
                Some(Frame::Display(instructions)) => {
                    last_activity = tokio::time::Instant::now();
                    if let Some(g) = guac.as_mut()
                        && let Err(e) = g.output(&instructions).await
                    {
                        break Err(format!("the recording failed, so the session was ended: {}", e.reason));
                    }
                    match tokio::time::timeout(send_timeout, ws.send(Message::Text(Utf8Bytes::from(instructions)))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => { inputs = None; }
                        Err(_) => break Err("the browser stopped reading; the session was ended".into()),
                    }
                }
                None => {
                    // The mode dropped its sender: it is ending; `run` answers next.
                    match (&mut run).await {
                        Ok(Ok(end)) => break Ok(end_text(end.reason, end.message)),
                        Ok(Err(e)) => break Err(e.message),
                        Err(e) => break Err(format!("the session task failed: {e}")),
                    }
                }
            },
            msg = ws.recv(), if inputs.is_some() => match msg {
                Some(Ok(Message::Binary(bytes))) => {
                    last_activity = tokio::time::Instant::now();
                    if let Some(tx) = &inputs { let _ = tx.send(Input::Bytes(bytes.to_vec())).await; }
                }
                Some(Ok(Message::Text(t))) if display => {
                    let Ok(meanings) = browser.receive(t.as_str(), session_policy.allow_paste) else {
                        break Err("the browser broke the display protocol; the session was ended".into());
                    };
                    for meaning in meanings {
                        match meaning {
                            display::FromBrowser::Reply(r) => { let _ = ws.send(Message::Text(Utf8Bytes::from(r))).await; }
                            display::FromBrowser::Input(input) => {
                                if matches!(input, Input::Key { .. } | Input::Mouse { .. } | Input::Clipboard(_)) {
                                    last_activity = tokio::time::Instant::now();
                                }
                                if let (Input::Key { keysym, pressed }, Some(g)) = (&input, guac.as_mut())
                                    && record_keys
                                    && let Err(e) = g.key(*keysym, *pressed).await
                                {
                                    tracing::warn!("recording a key failed: {}", e.reason);
                                }
                                if let Some(tx) = &inputs { let _ = tx.send(input).await; }
                            }
                            display::FromBrowser::Nothing => {}
                        }
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    if let Some((cols, rows)) = parse_resize(t.as_str()) {
                        if let Some(c) = cast.as_mut() { let _ = c.resize(cols, rows).await; }
                        if let Some(tx) = &inputs { let _ = tx.send(Input::Resize { cols, rows, width: 0, height: 0 }).await; }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    if let Some(tx) = inputs.take() { let _ = tx.send(Input::Close).await; }
                }
                Some(Ok(_)) => {}
            },
            changed = stop.changed() => {
                if changed.is_ok() && let Some(reason) = stop.borrow().clone() {
                    inputs = None;
                    break Ok(reason);
                }
            }
            () = tokio::time::sleep_until(last_activity + idle_limit) => {
                inputs = None;
                break Ok(live::IDLE.into());
            }
            () = tokio::time::sleep_until(deadline) => {
                inputs = None;
                break Ok("The access window ended, so the session was closed.".into());
            }
        }
    };
    drop(inputs);
    // Let the mode finish closing (it sees its input channel closed).
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while ends.frames.recv().await.is_some() {}
    })
    .await;
    run.abort();
    let mut files = Vec::new();
    if let Some(g) = guac {
        files.push(g.seal().await.map_err(|e| e.to_string())?);
    }
    if let Some(cast) = cast {
        files.push(cast.seal().await.map_err(|e| e.to_string())?);
    }
    if let Some(script) = script {
        files.extend(
            script
                .seal(&rfc3339_now())
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    if !files.is_empty() {
        engine.store_recording(flow, &rec_dir, files).await?;
    }
    outcome
}

/// At start-up: the sessions this node was running when it stopped are over. Their recordings are
/// sealed as far as they got, and their ends (lease, credential source, JIT account) completed.
pub async fn recover(engine: &Engine) -> Result<usize, String> {
    let node = engine.app.config.node();
    let running = engine
        .app
        .store
        .running_sessions(&node)
        .await
        .map_err(|e| e.to_string())?;
    let reason = "The gateway restarted, so the session was ended.";
    for row in &running {
        let dir = engine
            .app
            .config
            .data_dir
            .join("recordings-open")
            .join(&row.id);
        let mut files = Vec::new();
        for name in [
            "session.guac",
            "session.cast",
            "session.typescript",
            "session.typescript.timing",
        ] {
            if dir.join(name).is_file() {
                files.push(
                    recording::seal_existing(&dir.join(name))
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        let person: uuid::Uuid = row
            .person
            .parse()
            .map_err(|_| "a session row names no person".to_owned())?;
        if let Ok(loaded) = engine.load_flow(&row.flow).await
            && !files.is_empty()
        {
            engine.store_recording(&loaded, &dir, files).await?;
        }
        engine
            .end_launched(&row.flow, reason)
            .await
            .map_err(|e| e.to_string())?;
        engine
            .app
            .store
            .session_ended(&row.id, unix_now())
            .await
            .map_err(|e| e.to_string())?;
        engine
            .audit_session(
                &person,
                "session.ended",
                json!({"session": row.id, "flow": row.flow, "reason": reason}),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(running.len())
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn end_text(reason: EndReason, message: Option<String>) -> String {
    let base = match reason {
        EndReason::TargetClosed => "The computer closed the session.",
        EndReason::ClosedByUser => "You closed the session.",
        EndReason::ClosedByHost => "The gateway closed the session.",
    };
    match message {
        Some(m) => format!("{base} ({m})"),
        None => base.to_owned(),
    }
}

/// `{"resize": {"cols": C, "rows": R}}` from the browser.
pub fn parse_resize(text: &str) -> Option<(u16, u16)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let r = v.get("resize")?;
    let cols = u16::try_from(r.get("cols")?.as_u64()?).ok()?;
    let rows = u16::try_from(r.get("rows")?.as_u64()?).ok()?;
    ((1..=1000).contains(&cols) && (1..=1000).contains(&rows)).then_some((cols, rows))
}

impl Engine {
    pub(crate) async fn audit_session(
        &self,
        person: &uuid::Uuid,
        event: &str,
        detail: serde_json::Value,
    ) -> Result<(), crate::workflow::FlowError> {
        self.audit(person, event, detail).await
    }

    /// Host keys: a key seen on first use is recorded (and later pinned); audited either way.
    async fn notice(
        &self,
        flow: &crate::workflow::state::Flow,
        notice: &Notice,
    ) -> Result<(), String> {
        match notice {
            Notice::HostKeySeen { host, fingerprint } => {
                let first = self
                    .app
                    .store
                    .trust_host_key(&flow.computer.to_string(), host, fingerprint, unix_now())
                    .await
                    .map_err(|e| e.to_string())?;
                let event = if first {
                    "session.host_key_trusted"
                } else {
                    "session.host_key_matched"
                };
                self.audit(
                    &flow.person,
                    event,
                    json!({"session": flow.session, "host": host, "fingerprint": fingerprint}),
                )
                .await
                .map_err(|e| e.to_string())
            }
            Notice::Connected { host } => self
                .audit(
                    &flow.person,
                    "session.connected",
                    json!({"session": flow.session, "host": host}),
                )
                .await
                .map_err(|e| e.to_string()),
            Notice::Message { .. } => Ok(()),
        }
    }

    /// Hands a sealed recording to the first enabled recorder and chains its hash into the audit log.
    async fn store_recording(
        &self,
        flow: &crate::workflow::state::Flow,
        dir: &std::path::Path,
        files: Vec<openpsm_plugin_api::RecordingFile>,
    ) -> Result<(), String> {
        let sealed = SealedRecording {
            session: flow.session,
            dir: dir.to_owned(),
            files: files.clone(),
        };
        let recorder = self.registry.active().values().find_map(|p| match p {
            PluginInstance::Recorder(r) => Some(r.clone()),
            _ => None,
        });
        let location = match recorder {
            Some(r) => r
                .store(sealed)
                .await
                .map(|s| s.location)
                .map_err(|e| format!("storing the recording failed: {e}"))?,
            None => dir.display().to_string(),
        };
        for file in files {
            self.audit(&flow.person, "recording.sealed", json!({"session": flow.session, "file": file.name, "sha256": file.sha256, "bytes": file.bytes, "location": location}))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The latest moment a flow's session may run (end of window, capped by the policy).
    pub(crate) fn session_deadline(&self, flow: &crate::workflow::state::Flow) -> i64 {
        let now = unix_now();
        flow.window_end
            .map_or(now + 8 * 3600, |end| end)
            .min(self.session_until_pub(flow, now).max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_messages() {
        assert_eq!(
            parse_resize(r#"{"resize":{"cols":120,"rows":40}}"#),
            Some((120, 40))
        );
        assert_eq!(parse_resize(r#"{"resize":{"cols":0,"rows":40}}"#), None);
        assert_eq!(parse_resize(r#"{"resize":{"cols":70000,"rows":40}}"#), None);
        assert_eq!(parse_resize("junk"), None);
        assert_eq!(
            split_user("EXAMPLE\\alice"),
            ("alice".into(), Some("EXAMPLE".into()))
        );
        assert_eq!(split_user("alice"), ("alice".into(), None));
    }
}
