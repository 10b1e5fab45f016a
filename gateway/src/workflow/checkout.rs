//! Step 9 and 10: the master password, the exclusive lease on a shared credential, the check-out
//! (the seed's 401 / token expired / other errors), the JIT account, and the sealed launch token.

use std::time::{Duration, SystemTime};

use openpsm_plugin_api::{CheckOut, CredentialKind, ErrorKind, JitRequest, SecretText, Subject};
use serde_json::json;
use uuid::Uuid;

use super::state::{Chosen, Flow, Injected, JitLogin, Outcome};
use super::{Engine, FlowError, internal};
use crate::messages;
use crate::store::unix_now;
use crate::token::LaunchClaims;

/// The seed's spelling of a connection mode in the check-out payload: "RDP", "SSH", "Telnet".
fn seed_mode(plugin: &str) -> String {
    match plugin {
        "rdp" => "RDP".into(),
        "ssh" => "SSH".into(),
        "telnet" => "Telnet".into(),
        other => other.to_owned(),
    }
}

impl Engine {
    /// How long a lease and a JIT account last: to the end of the access window, capped by the
    /// policy's longest session.
    fn session_until(&self, flow: &Flow, now: i64) -> i64 {
        let cap = self
            .policy_of(flow)
            .ok()
            .and_then(|p| p.max_session_minutes)
            .map_or(8 * 3600, |m| i64::from(m) * 60);
        flow.window_end.map_or(now + cap, |end| end.min(now + cap))
    }

    /// When a session of this flow must end at the latest.
    pub(crate) fn session_until_pub(&self, flow: &Flow, now: i64) -> i64 {
        self.session_until(flow, now)
    }

    /// Whether the person made too many wrong attempts (master passwords, MFA codes) lately,
    /// across flows and nodes.
    pub(crate) async fn person_locked(&self, flow: &Flow, now: i64) -> Result<bool, FlowError> {
        let failures = self
            .app
            .store
            .failures_since("person", &flow.person.to_string(), now - 15 * 60)
            .await
            .map_err(internal)?;
        Ok(failures >= i64::from(self.app.config.flows.person_failures_per_15min))
    }

    pub(crate) async fn check_out(
        &self,
        flow: &mut Flow,
        master: SecretText,
    ) -> Result<(), FlowError> {
        let now = unix_now();
        let computer = self
            .app
            .directory
            .computer(&flow.computer)
            .cloned()
            .ok_or_else(|| internal("computer left the directory"))?;
        if computer.jit
            && let Some(at) = flow.master_prompt_at
            && now < at + i64::from(flow.connection_delay)
        {
            flow.notice = Some(messages::MASTER_TOO_EARLY.into());
            return Ok(());
        }
        if flow.window_end.is_some_and(|end| now >= end) {
            return self.fail(flow, messages::WINDOW_OVER).await;
        }
        if self.person_locked(flow, now).await? {
            return self.fail(flow, messages::PERSON_LOCKED).await;
        }
        let Some(chosen) = flow.credential.clone() else {
            return Err(internal("check-out without a credential"));
        };
        let until = self.session_until(flow, now);
        // A shared credential is leased first: at most one flow holds it. In normal mode any free
        // shared credential of the computer will do.
        let mut credential = chosen.clone();
        if chosen.kind == CredentialKind::Shared {
            let mut candidates = vec![chosen.clone()];
            if !flow.advanced {
                for o in self.credential_options(flow, now).await? {
                    if o.kind == CredentialKind::Shared && o.id != chosen.id {
                        candidates.push(Chosen {
                            id: o.id,
                            kind: o.kind,
                            label: o.label,
                        });
                    }
                }
            }
            let mut leased = None;
            for c in candidates {
                if self
                    .app
                    .store
                    .acquire_lease(&c.id, &flow.id, now, until)
                    .await
                    .map_err(internal)?
                {
                    leased = Some(c);
                    break;
                }
            }
            let Some(c) = leased else {
                self.audit(
                    &flow.person,
                    "flow.refused",
                    json!({"flow": flow.id, "reason": "all shared credentials in use"}),
                )
                .await?;
                return self.fail(flow, messages::SHARED_IN_USE).await;
            };
            flow.lease = Some(c.id.clone());
            credential = c;
        }
        let request = CheckOut {
            computer: flow
                .computer_id
                .clone()
                .unwrap_or_else(|| flow.computer.to_string()),
            credential: credential.id.clone(),
            password: master,
            mode: seed_mode(flow.mode.as_deref().unwrap_or_default()),
            session: flow.session,
            loginsessionid: flow.login_session_id.clone(),
            subject: self.subject(flow),
        };
        match self.source()?.check_out(request).await {
            Ok(out) => {
                flow.credential = Some(credential.clone());
                let hosts: Vec<String> =
                    [out.server.clone(), out.server2.clone(), out.server3.clone()]
                        .into_iter()
                        .flatten()
                        .collect();
                let policy_record = self.policy_of(flow)?.record;
                flow.injected = Some(Injected {
                    user_name: out.user_name.clone(),
                    secret: out.password.clone(),
                    is_key: out.is_password_ssh_key,
                    hosts: if hosts.is_empty() {
                        computer.hosts.clone()
                    } else {
                        hosts
                    },
                    port: out.management_port.or(computer.port),
                    // The IAM decides when it is the source (RecordPSMSession = false: no
                    // recording); the embedded vault leaves it to the policy.
                    record: if self.uses_vault() {
                        policy_record || out.record_psm_session
                    } else {
                        out.record_psm_session
                    },
                    allow_live_snooping: out.allow_live_snooping,
                    allow_join_requests: out.allow_join_requests,
                    allow_join_invites: out.allow_join_invites,
                });
                self.audit(
                    &flow.person,
                    "flow.checked_out",
                    json!({"flow": flow.id, "credential": credential.id, "kind": credential.kind}),
                )
                .await?;
            }
            Err(e) => {
                tracing::warn!(flow = %flow.id, kind = ?e.kind, "check-out refused: {e}");
                if let Some(lease) = flow.lease.take() {
                    self.app
                        .store
                        .release_lease(&lease, &flow.id)
                        .await
                        .map_err(internal)?;
                }
                self.audit(
                    &flow.person,
                    "flow.check_out_refused",
                    json!({"flow": flow.id, "kind": e.kind}),
                )
                .await?;
                return match e.kind {
                    ErrorKind::Unauthorized => {
                        self.app
                            .store
                            .record_failure("person", &flow.person.to_string(), now)
                            .await
                            .map_err(internal)?;
                        flow.master_failures += 1;
                        if flow.master_failures >= self.app.config.flows.master_password_attempts {
                            self.fail(flow, messages::MASTER_TOO_MANY).await
                        } else {
                            flow.notice = Some(messages::MASTER_WRONG.into());
                            Ok(())
                        }
                    }
                    ErrorKind::TokenExpired => {
                        self.finish(
                            flow,
                            Outcome::Ended {
                                reason: messages::TOKEN_EXPIRED.into(),
                            },
                        )
                        .await
                    }
                    _ => self.fail(flow, messages::CHECKOUT_FAILED).await,
                };
            }
        }
        // A JIT computer is reached with its just-in-time account, not the checked-out one.
        if let (Some(jit), Some(injected)) = (&flow.jit_login, flow.injected.as_mut()) {
            injected.user_name.clone_from(&jit.user_name);
            injected.secret = jit.password.clone();
            injected.is_key = false;
        } else if computer.jit {
            return Err(internal(
                "a JIT computer's flow reached check-out without its account",
            ));
        }
        self.launch(flow, now).await
    }

    pub(crate) async fn create_jit_account(
        &self,
        flow: &mut Flow,
        until: i64,
    ) -> Result<(), FlowError> {
        let Some(provisioner) = self.provisioner() else {
            return self.fail(flow, messages::JIT_UNAVAILABLE).await;
        };
        let policy = self.policy_of(flow)?;
        let groups = policy
            .access_levels
            .iter()
            .find(|l| Some(&l.id) == flow.access_level.as_ref())
            .map(|l| l.groups.clone())
            .unwrap_or_default();
        let person = self.app.directory.person(&flow.person);
        let request = JitRequest {
            person: Subject {
                person: flow.person,
                login: person.map(|p| p.login.clone()).unwrap_or_default(),
                display_name: person.map(|p| p.name.clone()).unwrap_or_default(),
            },
            computer: flow.computer,
            session: flow.session,
            groups,
            not_after: SystemTime::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(until).unwrap_or(0)),
        };
        self.track_jit_intent(flow).await?;
        match provisioner.create(request).await {
            Ok(account) => {
                self.audit(
                    &flow.person,
                    "flow.jit_created",
                    json!({"flow": flow.id, "account": account.account.id}),
                )
                .await?;
                flow.jit_login = Some(JitLogin {
                    user_name: match &account.domain {
                        Some(d) => format!("{d}\\{}", account.user_name),
                        None => account.user_name.clone(),
                    },
                    password: account.password.clone(),
                });
                self.track_jit(flow, &account.account).await?;
                flow.jit = Some(account.account);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(flow = %flow.id, "JIT account creation failed: {e}");
                self.forget_jit_intent(flow).await?;
                self.audit(
                    &flow.person,
                    "flow.jit_failed",
                    json!({"flow": flow.id, "kind": e.kind, "error": e.message}),
                )
                .await?;
                self.fail(flow, messages::JIT_UNAVAILABLE).await
            }
        }
    }

    async fn launch(&self, flow: &mut Flow, now: i64) -> Result<(), FlowError> {
        let Some(injected) = &flow.injected else {
            return Err(internal("launch without a credential"));
        };
        let ttl = i64::try_from(self.app.config.flows.launch_token_ttl_secs).unwrap_or(30);
        let token_id = Uuid::new_v4();
        // The connection object names the credential; the secret itself stays in the sealed flow
        // state on the gateway and never travels in the token.
        let connection = json!({
            "mode": flow.mode,
            "hosts": injected.hosts,
            "port": injected.port,
            "user": injected.user_name,
            "credential": flow.credential.as_ref().map(|c| c.id.clone()),
            "jit": flow.jit.is_some(),
            "display": {"width": flow.width, "height": flow.height, "dpi": flow.dpi},
            "record": injected.record,
            "allow_live_snooping": injected.allow_live_snooping,
            "allow_join_requests": injected.allow_join_requests,
            "allow_join_invites": injected.allow_join_invites,
        });
        let claims = LaunchClaims {
            id: token_id,
            flow: flow.id.clone(),
            session: flow.session,
            // Only the browser (or API client) holding the flow secret can present this token.
            browser: flow.browser.clone(),
            expires_at: now + ttl,
            connection,
        };
        let token = self.app.sealer.seal(&claims).map_err(internal)?;
        self.audit(
            &flow.person,
            "flow.token_issued",
            json!({"flow": flow.id, "session": flow.session, "token": token_id, "mode": flow.mode}),
        )
        .await?;
        flow.outcome = Some(Outcome::Launched {
            token_id,
            expires_at: now + ttl,
            token,
        });
        Ok(())
    }
}
