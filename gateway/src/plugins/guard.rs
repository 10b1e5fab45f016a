//! Every call into a plugin, built-in or library, goes through a guard: a timeout, a panic
//! catcher, a metric and a log line on failure. The wrappers implement the same traits, so the
//! rest of the gateway holds a guarded plugin without knowing it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt as _;
use openpsm_plugin_api::{
    AccountProvisioner, CheckOut, CheckedOut, ConnectionMode, CredentialRef, CredentialSource,
    EndSession, EnrolledSecret, Enrollment, ErrorKind, FlowSubject, JitAccount, JitAccountRef,
    JitRequest, MfaProvider, ModeInfo, OpenRequest, Origin, Plugin, PluginError, PluginInfo,
    PluginInstance, PluginResult, ProviderInfo, Recorder, SealedRecording, SecretText, SessionEnd,
    SessionIo, StoredRecording, Subject, Verdict, async_trait,
};

#[derive(Clone)]
pub struct Guard {
    id: Arc<str>,
    timeout: Duration,
}

impl Guard {
    pub fn new(id: &str, timeout: Duration) -> Self {
        Self {
            id: Arc::from(id),
            timeout,
        }
    }

    /// Runs one call with the timeout.
    pub async fn call<T>(
        &self,
        method: &'static str,
        fut: impl Future<Output = PluginResult<T>>,
    ) -> PluginResult<T> {
        self.run(method, Some(self.timeout), fut).await
    }

    /// Runs a call that may last (a session): panics are caught, no timeout.
    pub async fn call_untimed<T>(
        &self,
        method: &'static str,
        fut: impl Future<Output = PluginResult<T>>,
    ) -> PluginResult<T> {
        self.run(method, None, fut).await
    }

    async fn run<T>(
        &self,
        method: &'static str,
        timeout: Option<Duration>,
        fut: impl Future<Output = PluginResult<T>>,
    ) -> PluginResult<T> {
        let started = Instant::now();
        let guarded = AssertUnwindSafe(fut).catch_unwind();
        let outcome = match timeout {
            Some(limit) => tokio::time::timeout(limit, guarded).await.ok(),
            None => Some(guarded.await),
        };
        let result = match outcome {
            None => Err(PluginError::new(
                Origin::Host,
                ErrorKind::Timeout,
                format!(
                    "plugin {} did not answer {method} within {} ms",
                    self.id,
                    self.timeout.as_millis()
                ),
            )),
            Some(Err(_panic)) => Err(PluginError::new(
                Origin::Plugin,
                ErrorKind::Panicked,
                format!("plugin {} panicked in {method}", self.id),
            )),
            Some(Ok(result)) => result,
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => kind_label(e.kind),
        };
        let plugin = self.id.to_string();
        metrics::counter!("openpsm_plugin_calls_total", "plugin" => plugin.clone(), "method" => method, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("openpsm_plugin_call_seconds", "plugin" => plugin, "method" => method)
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = &result
            && matches!(
                e.kind,
                ErrorKind::Timeout
                    | ErrorKind::Panicked
                    | ErrorKind::Unresponsive
                    | ErrorKind::Protocol
            )
        {
            tracing::warn!(plugin = %self.id, method, kind = outcome, "plugin call failed: {e}");
        }
        result
    }
}

fn kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSettings => "invalid_settings",
        ErrorKind::InvalidInput => "invalid_input",
        ErrorKind::Unauthorized => "unauthorized",
        ErrorKind::TokenExpired => "token_expired",
        ErrorKind::HostKeyMismatch => "host_key_mismatch",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Unreachable => "unreachable",
        ErrorKind::Protocol => "protocol",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Panicked => "panicked",
        ErrorKind::Unresponsive => "unresponsive",
        ErrorKind::Internal => "internal",
    }
}

/// Wraps a plugin in its guard.
pub fn guard(instance: PluginInstance, guard: Guard) -> PluginInstance {
    match instance {
        PluginInstance::ConnectionMode(inner) => {
            PluginInstance::ConnectionMode(Arc::new(Guarded { inner, guard }))
        }
        PluginInstance::MfaProvider(inner) => {
            PluginInstance::MfaProvider(Arc::new(Guarded { inner, guard }))
        }
        PluginInstance::CredentialSource(inner) => {
            PluginInstance::CredentialSource(Arc::new(Guarded { inner, guard }))
        }
        PluginInstance::Recorder(inner) => {
            PluginInstance::Recorder(Arc::new(Guarded { inner, guard }))
        }
        PluginInstance::AccountProvisioner(inner) => {
            PluginInstance::AccountProvisioner(Arc::new(Guarded { inner, guard }))
        }
    }
}

struct Guarded<T: ?Sized> {
    inner: Arc<T>,
    guard: Guard,
}

macro_rules! guarded_core {
    ($tr:ident) => {
        #[async_trait]
        impl Plugin for Guarded<dyn $tr> {
            fn info(&self) -> PluginInfo {
                self.inner.info()
            }

            async fn health(&self) -> PluginResult<()> {
                self.guard.call("health", self.inner.health()).await
            }
        }
    };
}

guarded_core!(ConnectionMode);
guarded_core!(MfaProvider);
guarded_core!(CredentialSource);
guarded_core!(Recorder);
guarded_core!(AccountProvisioner);

#[async_trait]
impl ConnectionMode for Guarded<dyn ConnectionMode> {
    fn mode_info(&self) -> ModeInfo {
        self.inner.mode_info()
    }

    async fn run(&self, req: OpenRequest, io: SessionIo) -> PluginResult<SessionEnd> {
        self.guard
            .call_untimed("run", self.inner.run(req, io))
            .await
    }
}

#[async_trait]
impl MfaProvider for Guarded<dyn MfaProvider> {
    fn provider_info(&self) -> ProviderInfo {
        self.inner.provider_info()
    }

    async fn enroll(&self, who: &Subject) -> PluginResult<Enrollment> {
        self.guard.call("enroll", self.inner.enroll(who)).await
    }

    async fn verify(
        &self,
        who: &Subject,
        secret: &EnrolledSecret,
        response: &SecretText,
        now: SystemTime,
    ) -> PluginResult<Verdict> {
        self.guard
            .call("verify", self.inner.verify(who, secret, response, now))
            .await
    }
}

#[async_trait]
impl CredentialSource for Guarded<dyn CredentialSource> {
    async fn list(&self, who: &FlowSubject) -> PluginResult<Vec<CredentialRef>> {
        self.guard.call("list", self.inner.list(who)).await
    }

    async fn check_out(&self, req: CheckOut) -> PluginResult<CheckedOut> {
        self.guard
            .call("check_out", self.inner.check_out(req))
            .await
    }

    async fn end_session(&self, req: EndSession) -> PluginResult<()> {
        self.guard
            .call("end_session", self.inner.end_session(req))
            .await
    }

    async fn authenticate(&self, who: &FlowSubject) -> PluginResult<()> {
        self.guard
            .call("authenticate", self.inner.authenticate(who))
            .await
    }
}

#[async_trait]
impl Recorder for Guarded<dyn Recorder> {
    async fn store(&self, rec: SealedRecording) -> PluginResult<StoredRecording> {
        self.guard.call("store", self.inner.store(rec)).await
    }

    async fn read(
        &self,
        rec: &StoredRecording,
        file: &str,
        offset: u64,
        max_len: u32,
    ) -> PluginResult<Vec<u8>> {
        self.guard
            .call("read", self.inner.read(rec, file, offset, max_len))
            .await
    }
}

#[async_trait]
impl AccountProvisioner for Guarded<dyn AccountProvisioner> {
    async fn create(&self, req: JitRequest) -> PluginResult<JitAccount> {
        self.guard.call("create", self.inner.create(req)).await
    }

    async fn remove(&self, account: &JitAccountRef) -> PluginResult<()> {
        self.guard.call("remove", self.inner.remove(account)).await
    }

    async fn owned(&self) -> PluginResult<Vec<JitAccountRef>> {
        self.guard.call("owned", self.inner.owned()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn timeouts_and_panics_become_errors() {
        let guard = Guard::new("test", Duration::from_millis(50));
        let slow = guard.call("slow", async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
        let err = slow.await.unwrap_err();
        assert_eq!((err.kind, err.origin), (ErrorKind::Timeout, Origin::Host));
        assert!(err.retryable);
        let err = guard
            .call("boom", async {
                let v: Vec<u8> = Vec::new();
                // An out-of-bounds index panics inside the future.
                #[allow(clippy::indexing_slicing)]
                let x = v[usize::from(v.is_empty())];
                Ok(x)
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Panicked);
        assert_eq!(guard.call("fine", async { Ok(7) }).await.unwrap(), 7);
        let untimed = guard.call_untimed("long", async {
            tokio::time::sleep(Duration::from_millis(120)).await;
            Ok(1)
        });
        assert_eq!(untimed.await.unwrap(), 1);
    }
}
