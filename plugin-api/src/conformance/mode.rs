//! The `ConnectionMode` suite.

use std::time::Duration;

use uuid::Uuid;

use super::{Report, common};
use crate::error::ErrorKind;
use crate::info::PluginKind;
use crate::mode::{ConnectionMode, EndReason, Frame, Input, Notice, OpenRequest, SessionIo};

/// What the suite may connect to.
pub struct ModeFixture {
    /// A request that reaches a live target on 127.0.0.1 (credential and all), if there is one.
    pub live: Option<LiveTarget>,
    /// A request template for the failure checks; hosts and port are replaced.
    pub template: OpenRequest,
}

pub struct LiveTarget {
    pub request: OpenRequest,
    /// Typed into the session...
    pub send: Vec<u8>,
    /// ...and expected back in its terminal output.
    pub expect: Vec<u8>,
}

const WAIT: Duration = Duration::from_secs(20);

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(9)
}

pub async fn check(mode: &dyn ConnectionMode, fixture: &ModeFixture) -> Report {
    let mut r = Report::default();
    common(&mut r, mode, PluginKind::ConnectionMode).await;
    let info = mode.mode_info();
    r.check(info.id == mode.info().id, "mode_info().id equals info().id");
    r.check(info.default_port != 0, "mode_info has a default port");

    let mut none = fixture.template.clone();
    none.hosts.clear();
    let got = run_closed(mode, none).await;
    r.check(
        matches!(&got, Some(Err(e)) if e.kind == ErrorKind::InvalidInput),
        format!("a request without hosts is refused as invalid input, got {got:?}"),
    );

    let mut dead = fixture.template.clone();
    dead.hosts = vec!["127.0.0.1".into()];
    dead.port = closed_port();
    let got = run_closed(mode, dead).await;
    r.check(
        matches!(&got, Some(Err(e)) if e.kind == ErrorKind::Unreachable && e.retryable),
        format!("a closed port is Unreachable and retryable, got {got:?}"),
    );

    if let Some(live) = &fixture.live {
        live_checks(&mut r, mode, live).await;
    }
    r
}

/// Runs a session whose browser closes at once; None when it did not end in time.
async fn run_closed(
    mode: &dyn ConnectionMode,
    req: OpenRequest,
) -> Option<crate::error::PluginResult<crate::mode::SessionEnd>> {
    let (io, ends) = SessionIo::pair(16);
    drop(ends.inputs);
    tokio::time::timeout(WAIT, mode.run(req, io)).await.ok()
}

async fn live_checks(r: &mut Report, mode: &dyn ConnectionMode, live: &LiveTarget) {
    // Fail-over: the first host refuses, the second answers.
    let mut req = live.request.clone();
    req.session = Uuid::new_v4();
    if req.hosts.first().map(String::as_str) == Some("127.0.0.1") {
        req.hosts.insert(0, "127.0.0.2".into());
    }
    let (io, mut ends) = SessionIo::pair(64);
    let session = mode.run(req, io);
    let talk = async {
        let mut seen = Vec::new();
        let mut connected = None;
        let _ = ends.inputs.send(Input::Bytes(live.send.clone())).await;
        while let Some(frame) = ends.frames.recv().await {
            match frame {
                Frame::Terminal(bytes) => seen.extend_from_slice(&bytes),
                Frame::Notice(Notice::Connected { host }) => connected = Some(host),
                _ => {}
            }
            if contains(&seen, &live.expect) {
                break;
            }
        }
        let echoed = contains(&seen, &live.expect);
        let _ = ends.inputs.send(Input::Close).await;
        // Keep reading so the mode never blocks on a full channel while it closes.
        while ends.frames.recv().await.is_some() {}
        (echoed, connected)
    };
    match tokio::time::timeout(WAIT, async { tokio::join!(session, talk) }).await {
        Err(_) => r.fail("a live session echoes and closes within 20 s"),
        Ok((end, (echoed, connected))) => {
            r.check(
                echoed,
                "what is typed reaches the target and its output comes back",
            );
            r.check(
                connected.is_some(),
                "a Connected notice names the host that answered",
            );
            r.check(
                connected.as_deref() != Some("127.0.0.2"),
                "a host that refuses is skipped for the next one",
            );
            r.check(
                matches!(&end, Ok(e) if e.reason == EndReason::ClosedByUser),
                format!("Input::Close ends the session as ClosedByUser, got {end:?}"),
            );
        }
    }

    // The host closes the input side (admin, window over, shutdown).
    let (io, ends) = SessionIo::pair(64);
    let mut frames = ends.frames;
    let inputs = ends.inputs;
    let session = mode.run(live.request.clone(), io);
    let host = async {
        // Wait for the session to be up, then close.
        while let Some(frame) = frames.recv().await {
            if matches!(frame, Frame::Notice(Notice::Connected { .. })) {
                break;
            }
        }
        drop(inputs);
        while frames.recv().await.is_some() {}
    };
    match tokio::time::timeout(WAIT, async { tokio::join!(session, host) }).await {
        Err(_) => r.fail("closing the input channel ends the session within 20 s"),
        Ok((end, ())) => r.check(
            matches!(&end, Ok(e) if e.reason == EndReason::ClosedByHost),
            format!("closing the input channel ends the session as ClosedByHost, got {end:?}"),
        ),
    }

    // The browser goes away: nobody reads frames any more.
    let (io, ends) = SessionIo::pair(4);
    drop(ends.frames);
    let inputs = ends.inputs;
    let end = tokio::time::timeout(WAIT, mode.run(live.request.clone(), io)).await;
    drop(inputs);
    r.check(
        end.is_ok(),
        "a session whose browser stopped reading ends within 20 s",
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
