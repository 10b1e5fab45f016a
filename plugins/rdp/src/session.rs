//! One RDP session: connect, then relay until one side ends. Server output is decoded into a
//! framebuffer; its dirty regions go to the browser as paced, flow-controlled frames.

use std::time::Duration;

use ironrdp_cliprdr::CliprdrClient;
use ironrdp_connector::connection_activation::{
    ConnectionActivationFactory, ConnectionActivationState,
};
use ironrdp_core::WriteBuf;
use ironrdp_displaycontrol::pdu::MonitorLayoutEntry;
use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_pdu::input::fast_path::FastPathInputEvent;
use ironrdp_pdu::rdp::capability_sets::InputFlags;
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput};
use ironrdp_tokio::FramedWrite as _;
use openpsm_plugin_api::mode::{EndReason, Notice};
use openpsm_plugin_api::{
    ErrorKind, Frame, Input, OpenRequest, Origin, PluginError, PluginResult, SessionEnd, SessionIo,
};
use tokio::io::AsyncWriteExt as _;
use tokio::time::Instant;

use crate::Rdp;
use crate::clipboard::{self, Clipboard};
use crate::connect::{self, Framed};
use crate::cursor::Cursor;
use crate::display::{FlowControl, GuacWriter, Rect, Regions, encode_regions, extract_rgb};
use crate::keys::{Keyboard, Mouse};

/// A little time for the rest of a burst of updates before a frame goes out.
const SETTLE: Duration = Duration::from_millis(4);
/// Browser resizes are debounced (a window drag sends many).
const RESIZE_DEBOUNCE: Duration = Duration::from_millis(300);

fn target(kind: ErrorKind, message: impl Into<String>) -> PluginError {
    PluginError::new(Origin::Target, kind, message)
}

fn ended(reason: EndReason, message: Option<String>) -> PluginResult<SessionEnd> {
    Ok(SessionEnd { reason, message })
}

/// Why the loop stopped.
enum Stop {
    End(EndReason, Option<String>),
    Fail(PluginError),
}

impl From<PluginError> for Stop {
    fn from(e: PluginError) -> Self {
        Self::Fail(e)
    }
}

struct Session<'a> {
    rdp: &'a Rdp,
    io: SessionIo,
    framed: Framed,
    stage: ActiveStage,
    image: DecodedImage,
    activation: ConnectionActivationFactory,
    regions: Regions,
    flow: FlowControl,
    keyboard: Keyboard,
    mouse: Mouse,
    read_only: bool,
    started: Instant,
    last_frame: Option<Instant>,
    dirty_since: Option<Instant>,
    resize: Option<(u32, u32, Instant)>,
    host: String,
    clipboard: Clipboard,
    /// The server's latest pointer, for the next frame.
    cursor: Option<Cursor>,
}

pub async fn run(rdp: &Rdp, req: OpenRequest, io: SessionIo) -> PluginResult<SessionEnd> {
    connect::install_crypto_provider();
    if req.hosts.is_empty() {
        return Err(PluginError::new(
            Origin::Host,
            ErrorKind::InvalidInput,
            "no server to connect to",
        ));
    }
    let started = Instant::now();
    let connected = connect::connect(rdp, &req, &io).await?;
    tracing::debug!(host = %connected.host, elapsed_ms = started.elapsed().as_millis() as u64, "rdp connected");
    let result = connected.result;
    let size = result.desktop_size;
    let unicode = result.input_flags.contains(InputFlags::UNICODE);
    let stage = ActiveStageBuilder {
        static_channels: result.static_channels,
        user_channel_id: result.user_channel_id,
        io_channel_id: result.io_channel_id,
        message_channel_id: result.message_channel_id,
        share_id: result.share_id,
        compression_type: result.compression_type,
        enable_server_pointer: result.enable_server_pointer,
        pointer_software_rendering: result.pointer_software_rendering,
    }
    .build();
    let mut session = Session {
        rdp,
        io,
        framed: connected.framed,
        stage,
        image: DecodedImage::new(PixelFormat::RgbA32, size.width, size.height),
        activation: result.activation_factory,
        regions: Regions::new(rdp.max_regions),
        flow: FlowControl::new(rdp.max_unacked),
        keyboard: Keyboard::new(unicode),
        mouse: Mouse::default(),
        read_only: req.policy.read_only,
        started,
        last_frame: None,
        dirty_since: None,
        resize: None,
        host: connected.host.clone(),
        clipboard: Clipboard::new(req.policy.allow_copy, req.policy.allow_paste),
        cursor: None,
    };
    let stop = match session.start(connected.fingerprint).await {
        Ok(()) => session.relay().await,
        Err(stop) => stop,
    };
    session.close().await;
    match stop {
        Stop::End(reason, message) => ended(reason, message),
        Stop::Fail(e) => Err(e),
    }
}

impl Session<'_> {
    async fn send(&mut self, frame: Frame) -> Result<(), Stop> {
        self.io
            .to_browser
            .send(frame)
            .await
            .map_err(|_| Stop::End(EndReason::ClosedByUser, None))
    }

    async fn start(&mut self, fingerprint: String) -> Result<(), Stop> {
        let host = self.host.clone();
        self.send(Frame::Notice(Notice::HostKeySeen {
            host: host.clone(),
            fingerprint,
        }))
        .await?;
        self.send(Frame::Notice(Notice::Connected { host })).await?;
        self.send_size().await
    }

    async fn send_size(&mut self) -> Result<(), Stop> {
        let mut w = GuacWriter::new();
        w.size(
            u32::from(self.image.width()),
            u32::from(self.image.height()),
        );
        for text in w.finish() {
            self.send(Frame::Display(text)).await?;
        }
        Ok(())
    }

    /// When the next frame may go out: something is dirty, the browser has room, pacing allows.
    /// A new cursor alone waits for the first picture (xrdp shows its pointer before the desktop
    /// is attached: a first frame must mean the desktop is there).
    fn flush_at(&self) -> Option<Instant> {
        let since = self.dirty_since?;
        let cursor_only = self.cursor.is_some() && self.last_frame.is_some();
        if (self.regions.is_empty() && !cursor_only) || !self.flow.can_send() {
            return None;
        }
        let paced = self
            .last_frame
            .map_or(since, |last| last + self.rdp.frame_interval);
        Some(paced.max(since + SETTLE))
    }

    async fn relay(&mut self) -> Stop {
        loop {
            let flush_at = self.flush_at();
            let resize_at = self.resize.map(|(_, _, at)| at);
            let step: Result<(), Stop> = tokio::select! {
                biased;
                input = self.io.from_browser.recv() => self.input(input).await,
                () = sleep_until(flush_at), if flush_at.is_some() => self.flush().await,
                () = sleep_until(resize_at), if resize_at.is_some() => self.apply_resize().await,
                pdu = self.framed.read_pdu() => match pdu {
                    Ok((action, frame)) => self.process(action, &frame).await,
                    Err(e) => Err(Stop::End(EndReason::TargetClosed, (e.kind() != std::io::ErrorKind::UnexpectedEof)
                        .then(|| format!("the connection to {} ended: {e}", self.host)))),
                },
                () = self.io.to_browser.closed() => Err(Stop::End(EndReason::ClosedByUser, None)),
            };
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    async fn input(&mut self, input: Option<Input>) -> Result<(), Stop> {
        let Some(input) = input else {
            return Err(Stop::End(EndReason::ClosedByHost, None));
        };
        match input {
            Input::Close => return Err(Stop::End(EndReason::ClosedByUser, None)),
            Input::Sync { timestamp } => self.flow.ack(timestamp),
            Input::Resize { width, height, .. } => {
                self.resize = Some((width, height, Instant::now() + RESIZE_DEBOUNCE));
            }
            Input::Key { keysym, pressed } if !self.read_only => {
                let events = self.keyboard.key(keysym, pressed);
                self.send_input(&events).await?;
            }
            Input::Mouse { x, y, buttons } if !self.read_only => {
                let (w, h) = (self.image.width(), self.image.height());
                let events = self.mouse.event(x, y, buttons, w, h);
                self.send_input(&events).await?;
            }
            Input::Clipboard(text) if !self.read_only => self.paste(text).await?,
            // Bytes are for terminals.
            _ => {}
        }
        Ok(())
    }

    async fn send_input(&mut self, events: &[FastPathInputEvent]) -> Result<(), Stop> {
        let outputs = self
            .stage
            .process_fastpath_input(&mut self.image, events)
            .map_err(|e| target(ErrorKind::Protocol, format!("encoding input: {e}")))?;
        self.handle(outputs).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.framed.write_all(bytes).await.map_err(|e| {
            Stop::End(
                EndReason::TargetClosed,
                Some(format!("writing to {} failed: {e}", self.host)),
            )
        })
    }

    async fn process(&mut self, action: ironrdp_pdu::Action, frame: &[u8]) -> Result<(), Stop> {
        let received = self.framed.last_read_at();
        let outputs = self
            .stage
            .process(&mut self.image, action, frame, received)
            .map_err(|e| target(ErrorKind::Protocol, format!("{}: {e}", self.host)))?;
        self.handle(outputs).await
    }

    async fn handle(&mut self, outputs: Vec<ActiveStageOutput>) -> Result<(), Stop> {
        let (width, height) = (
            u32::from(self.image.width()),
            u32::from(self.image.height()),
        );
        for damage in self.stage.take_damage_regions() {
            let rect = Rect {
                x: u32::from(damage.left),
                y: u32::from(damage.top),
                w: (u32::from(damage.right) + 1).saturating_sub(u32::from(damage.left)),
                h: (u32::from(damage.bottom) + 1).saturating_sub(u32::from(damage.top)),
            };
            if let Some(rect) = rect.clip(width, height) {
                self.regions.add(rect);
                self.dirty_since.get_or_insert_with(Instant::now);
            }
        }
        for output in outputs {
            match output {
                ActiveStageOutput::ResponseFrame(bytes) => self.write(&bytes).await?,
                ActiveStageOutput::Terminate(reason) => {
                    return Err(Stop::End(
                        EndReason::TargetClosed,
                        Some(reason.description()),
                    ));
                }
                ActiveStageOutput::DeactivateAll => self.reactivate().await?,
                ActiveStageOutput::PointerBitmap(pointer) => {
                    self.set_cursor(Cursor::from_pointer(&pointer));
                }
                ActiveStageOutput::PointerDefault => self.set_cursor(Cursor::arrow()),
                ActiveStageOutput::PointerHidden => self.set_cursor(Cursor::hidden()),
                ActiveStageOutput::ServerRedirection(_) => {
                    return Err(Stop::Fail(target(
                        ErrorKind::Protocol,
                        format!(
                            "{} redirected the session, which is not supported",
                            self.host
                        ),
                    )));
                }
                _ => {}
            }
        }
        self.pump_clipboard().await
    }

    fn set_cursor(&mut self, cursor: Result<Cursor, crate::display::EncodeError>) {
        match cursor {
            Ok(cursor) => {
                self.cursor = Some(cursor);
                self.dirty_since.get_or_insert_with(Instant::now);
            }
            Err(e) => tracing::debug!(error = %e, "rdp pointer not shown"),
        }
    }

    /// Text pasted in the browser, for the server's clipboard.
    async fn paste(&mut self, text: String) -> Result<(), Stop> {
        let Some(cliprdr) = self.stage.get_svc_processor_mut::<CliprdrClient>() else {
            return Ok(());
        };
        let outcome = self.clipboard.paste(cliprdr, text);
        self.clipboard_outcome(outcome).await
    }

    /// Answers what the clipboard channel reported while processing server data.
    async fn pump_clipboard(&mut self) -> Result<(), Stop> {
        loop {
            let events = match self
                .stage
                .get_svc_processor_mut::<CliprdrClient>()
                .and_then(|c| c.downcast_backend_mut::<clipboard::Backend>())
            {
                Some(backend) => backend.take_events(),
                None => return Ok(()),
            };
            if events.is_empty() {
                return Ok(());
            }
            for event in events {
                let Some(cliprdr) = self.stage.get_svc_processor_mut::<CliprdrClient>() else {
                    return Ok(());
                };
                let outcome = self.clipboard.event(cliprdr, event);
                self.clipboard_outcome(outcome).await?;
            }
        }
    }

    async fn clipboard_outcome(
        &mut self,
        outcome: ironrdp_pdu::PduResult<clipboard::Outcome>,
    ) -> Result<(), Stop> {
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(error = %e, "rdp clipboard channel");
                return Ok(());
            }
        };
        if let Some(messages) = outcome.messages {
            match self.stage.process_svc_processor_messages(messages) {
                Ok(bytes) => self.write(&bytes).await?,
                Err(e) => tracing::warn!(error = %e, "rdp clipboard channel"),
            }
        }
        if let Some(text) = outcome.text {
            self.send(Frame::Clipboard(text)).await?;
        }
        if let Some(size) = outcome.refused {
            tracing::info!(size, "rdp clipboard text refused: too large");
            let text = format!(
                "The clipboard text ({} KiB) is larger than {} KiB and was not passed on",
                size.div_ceil(1024),
                clipboard::MAX_TEXT / 1024
            );
            self.send(Frame::Notice(Notice::Message { text })).await?;
        }
        Ok(())
    }

    /// The deactivation-reactivation sequence (after a resize, a reconnection to the session):
    /// new capabilities, possibly a new desktop size; the browser gets a new `size`.
    async fn reactivate(&mut self) -> Result<(), Stop> {
        let mut sequence = self.activation.create();
        let mut buf = WriteBuf::new();
        let deadline = Instant::now() + self.rdp.connect_timeout;
        loop {
            let written = tokio::time::timeout_at(
                deadline,
                ironrdp_tokio::single_sequence_step_read(&mut self.framed, &mut sequence, &mut buf),
            )
            .await
            .map_err(|_| {
                target(
                    ErrorKind::Timeout,
                    "the server did not reactivate the session",
                )
            })?
            .map_err(|e| target(ErrorKind::Protocol, format!("reactivation: {e}")))?;
            if let Some(n) = written.size() {
                let bytes = buf.filled().get(..n).unwrap_or_default().to_vec();
                self.write(&bytes).await?;
            }
            if let ConnectionActivationState::Finalized {
                desktop_size,
                share_id,
                input_flags,
                static_channel_chunk_size,
                enable_server_pointer,
                pointer_software_rendering,
                ..
            } = sequence.connection_activation_state()
            {
                if !self.stage.reactivate(
                    sequence.io_channel_id(),
                    sequence.user_channel_id(),
                    share_id,
                    enable_server_pointer,
                    pointer_software_rendering,
                    static_channel_chunk_size,
                ) {
                    return Err(Stop::Fail(target(
                        ErrorKind::Protocol,
                        "invalid static channel chunk size on reactivation",
                    )));
                }
                self.keyboard.unicode = input_flags.contains(InputFlags::UNICODE);
                self.image =
                    DecodedImage::new(PixelFormat::RgbA32, desktop_size.width, desktop_size.height);
                self.regions.clear();
                self.regions.add(Rect {
                    x: 0,
                    y: 0,
                    w: u32::from(desktop_size.width),
                    h: u32::from(desktop_size.height),
                });
                self.dirty_since = Some(Instant::now());
                tracing::debug!(?desktop_size, "rdp session reactivated");
                return self.send_size().await;
            }
        }
    }

    async fn apply_resize(&mut self) -> Result<(), Stop> {
        let Some((width, height, _)) = self.resize.take() else {
            return Ok(());
        };
        let (width, height) = MonitorLayoutEntry::adjust_display_size(width, height);
        if (width, height)
            == (
                u32::from(self.image.width()),
                u32::from(self.image.height()),
            )
        {
            return Ok(());
        }
        match self.stage.encode_resize(width, height, None, None) {
            Some(Ok(bytes)) => self.write(&bytes).await,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "rdp resize not encoded");
                Ok(())
            }
            // The server offers no display control channel: the desktop keeps its size.
            None => Ok(()),
        }
    }

    /// Sends the current pixels of the dirty regions as one frame.
    async fn flush(&mut self) -> Result<(), Stop> {
        let width = u32::from(self.image.width());
        let height = u32::from(self.image.height());
        let pieces: Vec<(Rect, Vec<u8>)> = self
            .regions
            .take()
            .into_iter()
            .filter_map(|r| r.clip(width, height))
            .map(|r| (r, extract_rgb(self.image.data(), width, &r)))
            .collect();
        self.dirty_since = None;
        let cursor = self.cursor.take();
        if pieces.is_empty() && cursor.is_none() {
            return Ok(());
        }
        let quality = self.rdp.jpeg_quality;
        let encoded = tokio::task::spawn_blocking(move || encode_regions(pieces, quality))
            .await
            .map_err(|e| PluginError::internal(format!("image encoder: {e}")))?
            .map_err(|e| PluginError::internal(format!("image encoder: {e}")))?;
        let mut writer = GuacWriter::new();
        if let Some(cursor) = &cursor {
            cursor.write(&mut writer);
        }
        for e in &encoded {
            writer.image(e);
        }
        let now = Instant::now();
        let ms = u64::try_from(now.duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        writer.sync(self.flow.next_timestamp(ms));
        self.last_frame = Some(now);
        for text in writer.finish() {
            self.send(Frame::Display(text)).await?;
        }
        Ok(())
    }

    /// Releases held modifiers and closes TLS cleanly.
    async fn close(&mut self) {
        if !self.read_only {
            let events = self.keyboard.release_all();
            if !events.is_empty()
                && let Ok(outputs) = self.stage.process_fastpath_input(&mut self.image, &events)
            {
                for output in outputs {
                    if let ActiveStageOutput::ResponseFrame(bytes) = output
                        && !bytes.is_empty()
                    {
                        let _ = tokio::time::timeout(
                            Duration::from_secs(1),
                            self.framed.write_all(&bytes),
                        )
                        .await;
                    }
                }
            }
        }
        let (stream, _) = self.framed.get_inner_mut();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.shutdown()).await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
