//! The host side: adapters that make a loaded library implement the same Rust traits as a
//! built-in, so nothing else in the host knows which kind it holds.
//!
//! Each call runs on a blocking thread (the library blocks on its own runtime). A caller that gives
//! up (the host's timeout drops the future) leaves the thread running; such calls are counted, and
//! once [`MAX_ABANDONED`] are stuck at once, further calls fail fast as `Unresponsive` instead of
//! piling up threads.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RStr, RVec};
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::codec::{self, InstanceInfo, method};
use super::{FfiPluginBox, FfiRecv, FfiSessionIo, FfiSessionIo_TO};
use crate::credential::{
    CheckOut, CheckedOut, CredentialRef, CredentialSource, EndSession, FlowSubject,
};
use crate::error::{ErrorKind, Origin, PluginError, PluginResult};
use crate::info::{PluginInfo, PluginKind};
use crate::mfa::{EnrolledSecret, Enrollment, MfaProvider, ProviderInfo, Verdict};
use crate::mode::{ConnectionMode, Frame, Input, ModeInfo, OpenRequest, SessionEnd, SessionIo};
use crate::plugin::{Plugin, PluginInstance};
use crate::provisioner::{AccountProvisioner, JitAccount, JitAccountRef, JitRequest};
use crate::recorder::{Recorder, SealedRecording, StoredRecording};
use crate::secret::SecretText;
use crate::types::Subject;

/// Abandoned calls still running inside a library before its calls fail fast.
pub const MAX_ABANDONED: usize = 4;

/// A plugin instance that lives in a loaded library.
pub struct ForeignPlugin {
    ffi: Arc<FfiPluginBox>,
    info: InstanceInfo,
    abandoned: Arc<AtomicUsize>,
}

impl ForeignPlugin {
    /// Wraps an instance the library built, reading its identity once.
    pub fn new(ffi: FfiPluginBox) -> PluginResult<Self> {
        let text = ffi.describe_instance();
        let info: InstanceInfo = match serde_json::from_str(text.as_str()) {
            Ok(info) => info,
            Err(_) => return Err(codec::error_from_wire(text.as_str())),
        };
        Ok(Self {
            ffi: Arc::new(ffi),
            info,
            abandoned: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn info(&self) -> &InstanceInfo {
        &self.info
    }

    /// Calls currently stuck in the library after their caller gave up.
    pub fn abandoned_calls(&self) -> usize {
        self.abandoned.load(Ordering::SeqCst)
    }

    /// The adapter for the plugin's kind.
    pub fn into_instance(self) -> PluginResult<PluginInstance> {
        let kind = self.info.plugin.kind;
        let missing = |what: &str| {
            PluginError::new(
                Origin::Plugin,
                ErrorKind::Protocol,
                format!("plugin of kind {kind} did not describe its {what}"),
            )
        };
        let mode = self.info.mode.clone();
        let mfa = self.info.mfa.clone();
        let this = Arc::new(self);
        Ok(match kind {
            PluginKind::ConnectionMode => PluginInstance::ConnectionMode(Arc::new(ForeignMode {
                info: mode.ok_or_else(|| missing("mode info"))?,
                plugin: this,
            })),
            PluginKind::MfaProvider => PluginInstance::MfaProvider(Arc::new(ForeignMfa {
                info: mfa.ok_or_else(|| missing("provider info"))?,
                plugin: this,
            })),
            PluginKind::CredentialSource => {
                PluginInstance::CredentialSource(Arc::new(ForeignCredentials { plugin: this }))
            }
            PluginKind::Recorder => {
                PluginInstance::Recorder(Arc::new(ForeignRecorder { plugin: this }))
            }
            PluginKind::AccountProvisioner => {
                PluginInstance::AccountProvisioner(Arc::new(ForeignProvisioner { plugin: this }))
            }
        })
    }

    fn check_responsive(&self) -> PluginResult<()> {
        let stuck = self.abandoned_calls();
        if stuck >= MAX_ABANDONED {
            return Err(PluginError::new(
                Origin::Host,
                ErrorKind::Unresponsive,
                format!(
                    "plugin {} is unresponsive: {stuck} earlier calls never returned",
                    self.info.plugin.id
                ),
            ));
        }
        Ok(())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        payload: String,
    ) -> PluginResult<T> {
        self.check_responsive()?;
        let ffi = self.ffi.clone();
        let watch = CallWatch::new(self.abandoned.clone());
        let state = watch.state.clone();
        let abandoned = self.abandoned.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let answer = ffi.call(RStr::from_str(method), RStr::from_str(&payload));
            CallWatch::finished(&state, &abandoned);
            answer
        })
        .await;
        watch.disarm();
        match answer {
            Ok(RResult::ROk(text)) => codec::from_json(method, text.as_str()),
            Ok(RResult::RErr(text)) => Err(codec::error_from_wire(text.as_str())),
            Err(join) => Err(PluginError::new(
                Origin::Host,
                ErrorKind::Internal,
                format!("plugin call {method} failed on the host: {join}"),
            )),
        }
    }
}

const RUNNING: u8 = 0;
const ABANDONED: u8 = 1;
const DONE: u8 = 2;

/// Counts a call as abandoned when its future is dropped before the library returned.
struct CallWatch {
    state: Arc<AtomicU8>,
    abandoned: Arc<AtomicUsize>,
    armed: bool,
}

impl CallWatch {
    fn new(abandoned: Arc<AtomicUsize>) -> Self {
        Self {
            state: Arc::new(AtomicU8::new(RUNNING)),
            abandoned,
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }

    /// Called by the blocking thread when the library returned.
    fn finished(state: &AtomicU8, abandoned: &AtomicUsize) {
        if state
            .compare_exchange(RUNNING, DONE, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            abandoned.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for CallWatch {
    fn drop(&mut self) {
        if self.armed
            && self
                .state
                .compare_exchange(RUNNING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

macro_rules! foreign_plugin_core {
    ($t:ty) => {
        #[async_trait]
        impl Plugin for $t {
            fn info(&self) -> PluginInfo {
                self.plugin.info.plugin.clone()
            }

            async fn health(&self) -> PluginResult<()> {
                self.plugin.call(method::HEALTH, "null".to_owned()).await
            }
        }
    };
}

struct ForeignMfa {
    plugin: Arc<ForeignPlugin>,
    info: ProviderInfo,
}
foreign_plugin_core!(ForeignMfa);

#[async_trait]
impl MfaProvider for ForeignMfa {
    fn provider_info(&self) -> ProviderInfo {
        self.info.clone()
    }

    async fn enroll(&self, who: &Subject) -> PluginResult<Enrollment> {
        self.plugin
            .call(method::MFA_ENROLL, codec::to_json(who)?)
            .await
    }

    async fn verify(
        &self,
        who: &Subject,
        secret: &EnrolledSecret,
        response: &SecretText,
        now: SystemTime,
    ) -> PluginResult<Verdict> {
        let args = codec::VerifyArgs {
            who: who.clone(),
            secret: secret.clone(),
            response: response.clone(),
            now,
        };
        self.plugin
            .call(method::MFA_VERIFY, codec::to_json(&args)?)
            .await
    }
}

struct ForeignCredentials {
    plugin: Arc<ForeignPlugin>,
}
foreign_plugin_core!(ForeignCredentials);

#[async_trait]
impl CredentialSource for ForeignCredentials {
    async fn list(&self, who: &FlowSubject) -> PluginResult<Vec<CredentialRef>> {
        self.plugin
            .call(method::CREDENTIAL_LIST, codec::to_json(who)?)
            .await
    }

    async fn check_out(&self, req: CheckOut) -> PluginResult<CheckedOut> {
        self.plugin
            .call(method::CREDENTIAL_CHECK_OUT, codec::to_json(&req)?)
            .await
    }

    async fn end_session(&self, req: EndSession) -> PluginResult<()> {
        self.plugin
            .call(method::CREDENTIAL_END_SESSION, codec::to_json(&req)?)
            .await
    }

    async fn authenticate(&self, who: &FlowSubject) -> PluginResult<()> {
        self.plugin
            .call(method::CREDENTIAL_AUTHENTICATE, codec::to_json(who)?)
            .await
    }
}

struct ForeignRecorder {
    plugin: Arc<ForeignPlugin>,
}
foreign_plugin_core!(ForeignRecorder);

#[async_trait]
impl Recorder for ForeignRecorder {
    async fn store(&self, rec: SealedRecording) -> PluginResult<StoredRecording> {
        self.plugin
            .call(method::RECORDER_STORE, codec::to_json(&rec)?)
            .await
    }

    async fn read(
        &self,
        rec: &StoredRecording,
        file: &str,
        offset: u64,
        max_len: u32,
    ) -> PluginResult<Vec<u8>> {
        let args = codec::ReadArgs {
            rec: rec.clone(),
            file: file.to_owned(),
            offset,
            max_len,
        };
        let bytes: codec::Bytes = self
            .plugin
            .call(method::RECORDER_READ, codec::to_json(&args)?)
            .await?;
        Ok(bytes.0)
    }
}

struct ForeignProvisioner {
    plugin: Arc<ForeignPlugin>,
}
foreign_plugin_core!(ForeignProvisioner);

#[async_trait]
impl AccountProvisioner for ForeignProvisioner {
    async fn create(&self, req: JitRequest) -> PluginResult<JitAccount> {
        self.plugin
            .call(method::PROVISIONER_CREATE, codec::to_json(&req)?)
            .await
    }

    async fn remove(&self, account: &JitAccountRef) -> PluginResult<()> {
        self.plugin
            .call(method::PROVISIONER_REMOVE, codec::to_json(account)?)
            .await
    }

    async fn owned(&self) -> PluginResult<Vec<JitAccountRef>> {
        self.plugin
            .call(method::PROVISIONER_OWNED, "null".to_owned())
            .await
    }
}

struct ForeignMode {
    plugin: Arc<ForeignPlugin>,
    info: ModeInfo,
}
foreign_plugin_core!(ForeignMode);

#[async_trait]
impl ConnectionMode for ForeignMode {
    fn mode_info(&self) -> ModeInfo {
        self.info.clone()
    }

    async fn run(&self, req: OpenRequest, io: SessionIo) -> PluginResult<SessionEnd> {
        self.plugin.check_responsive()?;
        let request = codec::to_json(&req)?;
        let host_io = HostIo {
            to_browser: io.to_browser,
            from_browser: Mutex::new(io.from_browser),
            runtime: tokio::runtime::Handle::current(),
        };
        let ffi = self.plugin.ffi.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let io = FfiSessionIo_TO::from_value(host_io, TD_Opaque);
            ffi.run_session(RStr::from_str(&request), io)
        })
        .await;
        match answer {
            Ok(RResult::ROk(text)) => codec::from_json("session end", text.as_str()),
            Ok(RResult::RErr(text)) => Err(codec::error_from_wire(text.as_str())),
            Err(join) => Err(PluginError::new(
                Origin::Host,
                ErrorKind::Internal,
                format!("plugin session failed on the host: {join}"),
            )),
        }
    }
}

/// The host's implementation of a session's channels, called from the library's threads.
struct HostIo {
    to_browser: mpsc::Sender<Frame>,
    from_browser: Mutex<mpsc::Receiver<Input>>,
    runtime: tokio::runtime::Handle,
}

impl FfiSessionIo for HostIo {
    fn send(&self, frame: RVec<u8>) -> bool {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match codec::decode_frame(&frame) {
                Ok(frame) => self.to_browser.blocking_send(frame).is_ok(),
                Err(err) => {
                    tracing::warn!(error = %err, "dropping a malformed frame from a plugin");
                    true
                }
            }
        }))
        .unwrap_or(false)
    }

    fn recv(&self, timeout_ms: u64) -> FfiRecv {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let Ok(mut rx) = self.from_browser.lock() else {
                return FfiRecv::Closed;
            };
            let wait = Duration::from_millis(timeout_ms.min(60_000));
            match self
                .runtime
                .block_on(async { tokio::time::timeout(wait, rx.recv()).await })
            {
                Err(_) => FfiRecv::Timeout,
                Ok(None) => FfiRecv::Closed,
                Ok(Some(input)) => match codec::encode_input(&input) {
                    Ok(data) => FfiRecv::Input(data.into()),
                    Err(_) => FfiRecv::Timeout,
                },
            }
        }))
        .unwrap_or(FfiRecv::Closed)
    }
}
