//! Ending a session at the credential source with the seed's retry rules: a 401 is tried again up
//! to 7 times in all; other errors are tried again with exponential backoff (bounded). The host
//! calls this from the one end path; `CredentialSource::end_session` must be idempotent.

use std::time::Duration;

use openpsm_plugin_api::{CredentialSource, EndSession, ErrorKind, PluginError};

/// The seed's 401 rule: at most this many tries in all.
pub const UNAUTHORIZED_TRIES: u32 = 7;
/// Other errors: at most this many tries in all, waiting `first_delay`, then twice as long, ...
pub const OTHER_TRIES: u32 = 6;

/// How the end went: the tries made and the last error if it never succeeded.
#[derive(Debug)]
pub struct Ended {
    pub tries: u32,
    pub error: Option<PluginError>,
}

pub async fn end_with_retries(
    source: &dyn CredentialSource,
    end: EndSession,
    first_delay: Duration,
) -> Ended {
    let (mut tries, mut unauthorized, mut others) = (0u32, 0u32, 0u32);
    let mut delay = first_delay;
    loop {
        tries += 1;
        match source.end_session(end.clone()).await {
            Ok(()) => return Ended { tries, error: None },
            Err(e) if e.kind == ErrorKind::Unauthorized => {
                unauthorized += 1;
                if unauthorized >= UNAUTHORIZED_TRIES {
                    return Ended {
                        tries,
                        error: Some(e),
                    };
                }
            }
            Err(e) => {
                others += 1;
                if others >= OTHER_TRIES {
                    return Ended {
                        tries,
                        error: Some(e),
                    };
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use openpsm_plugin_api::{
        CheckOut, CheckedOut, CredentialRef, FlowSubject, Origin, Plugin, PluginInfo, PluginKind,
        PluginResult, async_trait,
    };

    use super::*;

    /// A credential source that answers end_session from a script of results.
    struct Scripted(Mutex<Vec<Option<ErrorKind>>>, Mutex<u32>);

    #[async_trait]
    impl Plugin for Scripted {
        fn info(&self) -> PluginInfo {
            PluginInfo::new(PluginKind::CredentialSource, "scripted", "1", "test")
        }
    }

    #[async_trait]
    impl CredentialSource for Scripted {
        async fn list(&self, _: &FlowSubject) -> PluginResult<Vec<CredentialRef>> {
            Ok(vec![])
        }
        async fn check_out(&self, _: CheckOut) -> PluginResult<CheckedOut> {
            Err(PluginError::internal("not used"))
        }
        async fn end_session(&self, _: EndSession) -> PluginResult<()> {
            *self.1.lock().unwrap() += 1;
            let next = self.0.lock().unwrap().pop();
            match next {
                Some(Some(kind)) => Err(PluginError::new(Origin::Backend, kind, "scripted")),
                _ => Ok(()),
            }
        }
    }

    fn end() -> EndSession {
        let subject = FlowSubject {
            person: uuid::Uuid::nil(),
            computer: uuid::Uuid::nil(),
            computer_id: None,
            policy: uuid::Uuid::nil(),
            login_session_id: None,
            api: None,
        };
        EndSession {
            session: uuid::Uuid::nil(),
            computer: "1".into(),
            credential: "c".into(),
            loginsessionid: None,
            subject,
        }
    }

    fn scripted(mut script: Vec<Option<ErrorKind>>) -> Scripted {
        script.reverse();
        Scripted(Mutex::new(script), Mutex::new(0))
    }

    #[tokio::test(start_paused = true)]
    async fn the_seeds_retry_rules() {
        // 401 forever: exactly 7 tries.
        let s = scripted(vec![Some(ErrorKind::Unauthorized); 20]);
        let r = end_with_retries(&s, end(), Duration::from_millis(100)).await;
        assert_eq!((r.tries, *s.1.lock().unwrap()), (7, 7));
        assert_eq!(r.error.map(|e| e.kind), Some(ErrorKind::Unauthorized));
        // 401 once, then success.
        let s = scripted(vec![Some(ErrorKind::Unauthorized), None]);
        let r = end_with_retries(&s, end(), Duration::from_millis(100)).await;
        assert_eq!((r.tries, r.error.is_none()), (2, true));
        // Other errors back off and give up after OTHER_TRIES.
        let s = scripted(vec![Some(ErrorKind::Unreachable); 20]);
        let started = tokio::time::Instant::now();
        let r = end_with_retries(&s, end(), Duration::from_millis(100)).await;
        assert_eq!(r.tries, OTHER_TRIES);
        // 100 + 200 + 400 + 800 + 1600 ms of (virtual) waiting between the six tries.
        assert_eq!(started.elapsed(), Duration::from_millis(3100));
        // A 500 twice, then success.
        let s = scripted(vec![
            Some(ErrorKind::Internal),
            Some(ErrorKind::Internal),
            None,
        ]);
        assert_eq!(
            end_with_retries(&s, end(), Duration::from_millis(100))
                .await
                .tries,
            3
        );
    }
}
