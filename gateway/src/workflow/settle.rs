//! Applying answers, taking the steps that have one possible answer, and what each step shows.

use std::time::SystemTime;

use openpsm_plugin_api::{Channel, CredentialKind, EndSession, PluginInstance, Verdict};
use serde_json::json;

use super::state::{Chosen, Flow, Outcome};
use super::steps::{self, Answer, Current, LevelOption, StepView};
use super::{Engine, FlowError, internal, mfa};
use crate::directory::Policy;
use crate::messages;
use crate::mfa::lockout::{self, Failure};
use crate::store::unix_now;

impl Engine {
    pub(crate) fn policy_of(&self, flow: &Flow) -> Result<&Policy, FlowError> {
        self.app
            .directory
            .policy(&flow.policy)
            .ok_or_else(|| internal("the flow's policy left the directory"))
    }

    pub(crate) fn current(&self, flow: &Flow) -> Result<Current, FlowError> {
        let policy = self.policy_of(flow)?;
        Ok(steps::current(
            flow,
            policy.record,
            policy.mfa_for(flow.client_ip),
        ))
    }

    /// Connection modes offered: enabled plugins the computer allows, in the computer's order.
    pub(crate) fn modes_for(&self, flow: &Flow) -> Vec<String> {
        let Some(computer) = self.app.directory.computer(&flow.computer) else {
            return Vec::new();
        };
        computer
            .modes
            .iter()
            .filter(|m| self.registry_mode(m).is_some())
            .cloned()
            .collect()
    }

    /// Takes every step that has exactly one possible answer, then saves.
    pub(crate) async fn settle_and_save(
        &self,
        mut flow: Flow,
        version: i64,
    ) -> Result<StepView, FlowError> {
        for _ in 0..16 {
            let current = self.current(&flow)?;
            let decided = match current {
                Current::ChooseMode => {
                    let options = self.modes_for(&flow);
                    let pick = match &flow.requested_mode {
                        Some(m) if options.contains(m) => Some(m.clone()),
                        _ if options.len() == 1 => options.first().cloned(),
                        _ => None,
                    };
                    match pick {
                        Some(mode) => {
                            self.audit(
                                &flow.person,
                                "flow.mode",
                                json!({"flow": flow.id, "mode": mode, "by": "gateway"}),
                            )
                            .await?;
                            flow.mode = Some(mode);
                            true
                        }
                        None if options.is_empty() => {
                            self.fail(&mut flow, messages::NO_MODE).await?;
                            true
                        }
                        None => false,
                    }
                }
                Current::Mfa(provider) => {
                    let Some(PluginInstance::MfaProvider(p)) = self.registry.get(&provider) else {
                        self.fail(
                            &mut flow,
                            &format!("The MFA method {provider} required here is not available."),
                        )
                        .await?;
                        continue;
                    };
                    let enrolled = mfa::enrolled(
                        &self.app.store,
                        &self.app.keys.vault,
                        &flow.person,
                        &provider,
                    )
                    .await
                    .map_err(internal)?;
                    if enrolled.is_none() {
                        let label = p.provider_info().label;
                        self.fail(&mut flow, &messages::not_enrolled(&label))
                            .await?;
                        true
                    } else if let Some(until) = self.mfa_lock(&flow).await? {
                        self.fail(&mut flow, &messages::mfa_locked(until - unix_now()))
                            .await?;
                        true
                    } else {
                        false
                    }
                }
                Current::ChooseAccessLevel => {
                    let policy = self.policy_of(&flow)?;
                    let levels = policy.levels_for(&flow.person);
                    match levels.as_slice() {
                        [] => {
                            self.fail(&mut flow, messages::NO_ACCESS_LEVEL).await?;
                            true
                        }
                        [only] => {
                            let id = only.id.clone();
                            self.audit(
                                &flow.person,
                                "flow.access_level",
                                json!({"flow": flow.id, "level": id, "by": "gateway"}),
                            )
                            .await?;
                            flow.access_level = Some(id);
                            true
                        }
                        _ => false,
                    }
                }
                Current::MasterPassword => {
                    let jit = self
                        .app
                        .directory
                        .computer(&flow.computer)
                        .is_some_and(|c| c.jit);
                    // A JIT computer's account is made first; the prompt then waits
                    // PSM_Connection_Delay (counted from now) for the directory to have it.
                    if jit && flow.jit.is_none() {
                        let until = self.session_until_pub(&flow, unix_now());
                        self.create_jit_account(&mut flow, until).await?;
                        if flow.outcome.is_some() {
                            continue;
                        }
                    }
                    if flow.master_prompt_at.is_none() {
                        flow.master_prompt_at = Some(unix_now());
                    }
                    false
                }
                _ => false,
            };
            if !decided {
                break;
            }
        }
        self.flows.save(&flow, version, unix_now()).await?;
        self.view_of(&flow).await
    }

    pub(crate) async fn fail(&self, flow: &mut Flow, message: &str) -> Result<(), FlowError> {
        self.finish(
            flow,
            Outcome::Failed {
                message: message.to_owned(),
            },
        )
        .await
    }

    /// Ends a flow: gives back the lease, ends the session at the credential source, removes a
    /// JIT account, records the outcome. Safe to call again.
    pub(crate) async fn finish(&self, flow: &mut Flow, outcome: Outcome) -> Result<(), FlowError> {
        if let Some(lease) = flow.lease.take() {
            self.app
                .store
                .release_lease(&lease, &flow.id)
                .await
                .map_err(internal)?;
        }
        if let (Some(injected), Some(chosen)) = (flow.injected.take(), &flow.credential) {
            drop(injected);
            let end = EndSession {
                session: flow.session,
                computer: flow
                    .computer_id
                    .clone()
                    .unwrap_or_else(|| flow.computer.to_string()),
                credential: chosen.id.clone(),
                loginsessionid: flow.login_session_id.clone(),
                subject: self.subject(flow),
            };
            // Kept in the store until the source confirms it; retried by the seed's rules.
            self.end_at_source(&end, &flow.person, &flow.id).await?;
        }
        if let Some(account) = flow.jit.take() {
            flow.jit_login = None;
            self.remove_jit(&flow.person, &flow.id, &account, "flow end")
                .await?;
        }
        let (event, detail) = match &outcome {
            Outcome::Launched { .. } => ("flow.launched", json!({})),
            Outcome::Ended { reason } => ("flow.ended", json!({"reason": reason})),
            Outcome::Failed { message } => ("flow.failed", json!({"reason": message})),
        };
        let mut detail = detail;
        detail["flow"] = json!(flow.id);
        self.audit(&flow.person, event, detail).await?;
        flow.outcome = Some(outcome);
        Ok(())
    }

    pub(crate) async fn apply(
        &self,
        flow: &mut Flow,
        current: Current,
        answer: Answer,
    ) -> Result<(), FlowError> {
        let now = unix_now();
        match answer {
            Answer::ChooseCredential { credential } => {
                let options = self.credential_options(flow, now).await?;
                match options.iter().find(|o| o.id == credential) {
                    Some(o) if o.available => {
                        flow.credential = Some(Chosen {
                            id: o.id.clone(),
                            kind: o.kind,
                            label: o.label.clone(),
                        });
                        self.audit(
                            &flow.person,
                            "flow.credential",
                            json!({"flow": flow.id, "credential": o.id, "kind": o.kind}),
                        )
                        .await?;
                    }
                    Some(_) => flow.notice = Some(messages::SHARED_IN_USE.into()),
                    None if !self.uses_vault() => {
                        return Err(FlowError::BadAnswer(
                            "no such credential for this computer".into(),
                        ));
                    }
                    None => match self.app.vault.entry(&credential).await {
                        Ok(e)
                            if e.kind == CredentialKind::Personal
                                && e.owner != Some(flow.person) =>
                        {
                            self.audit(&flow.person, "flow.refused", json!({"flow": flow.id, "reason": "someone else's personal credential", "credential": credential})).await?;
                            flow.notice = Some(messages::SOMEONE_ELSES_CREDENTIAL.into());
                        }
                        _ => {
                            return Err(FlowError::BadAnswer(
                                "no such credential for this computer".into(),
                            ));
                        }
                    },
                }
            }
            Answer::Agreement { accept } => {
                self.audit(
                    &flow.person,
                    "flow.agreement",
                    json!({"flow": flow.id, "accepted": accept}),
                )
                .await?;
                if accept {
                    flow.agreed = true;
                } else {
                    self.finish(
                        flow,
                        Outcome::Ended {
                            reason: messages::DECLINED.into(),
                        },
                    )
                    .await?;
                }
            }
            Answer::ChooseMode { mode } => {
                if !self.modes_for(flow).contains(&mode) {
                    return Err(FlowError::BadAnswer(format!(
                        "mode {mode:?} is not offered"
                    )));
                }
                self.audit(
                    &flow.person,
                    "flow.mode",
                    json!({"flow": flow.id, "mode": mode, "by": "person"}),
                )
                .await?;
                flow.mode = Some(mode);
            }
            Answer::Mfa { response } => {
                let Current::Mfa(provider) = current else {
                    return Err(internal("MFA answer outside the MFA step"));
                };
                self.verify_mfa(flow, &provider, &response).await?;
            }
            Answer::ChooseAccessLevel { access_level } => {
                let policy = self.policy_of(flow)?;
                if !policy
                    .levels_for(&flow.person)
                    .iter()
                    .any(|l| l.id == access_level)
                {
                    return Err(FlowError::BadAnswer(
                        "not an access level you are pre-approved for".into(),
                    ));
                }
                self.audit(
                    &flow.person,
                    "flow.access_level",
                    json!({"flow": flow.id, "level": access_level, "by": "person"}),
                )
                .await?;
                flow.access_level = Some(access_level);
            }
            Answer::MasterPassword { master_password } => {
                self.check_out(flow, master_password).await?
            }
        }
        Ok(())
    }

    async fn verify_mfa(
        &self,
        flow: &mut Flow,
        provider: &str,
        response: &openpsm_plugin_api::SecretText,
    ) -> Result<(), FlowError> {
        let Some(PluginInstance::MfaProvider(p)) = self.registry.get(provider) else {
            return self
                .fail(
                    flow,
                    &format!("The MFA method {provider} required here is not available."),
                )
                .await;
        };
        let Some(secret) = mfa::enrolled(
            &self.app.store,
            &self.app.keys.vault,
            &flow.person,
            provider,
        )
        .await
        .map_err(internal)?
        else {
            return self
                .fail(flow, &messages::not_enrolled(&p.provider_info().label))
                .await;
        };
        let who = openpsm_plugin_api::Subject {
            person: flow.person,
            login: self
                .app
                .directory
                .person(&flow.person)
                .map(|p| p.login.clone())
                .unwrap_or_default(),
            display_name: String::new(),
        };
        if let Some(until) = self.mfa_lock(flow).await? {
            return self
                .fail(flow, &messages::mfa_locked(until - unix_now()))
                .await;
        }
        let verdict = p.verify(&who, &secret, response, SystemTime::now()).await;
        let failure = match verdict {
            Ok(Verdict::Accepted { step }) => {
                let key = format!(
                    "{}:{provider}:{}",
                    flow.person,
                    step.map(|s| s.to_string()).unwrap_or_else(|| "-".into())
                );
                // A response accepted once is refused again, on every node.
                let first = step.is_none()
                    || self
                        .app
                        .store
                        .consume_once("mfa", &key, unix_now() + 86_400 * 366)
                        .await
                        .map_err(internal)?;
                (!first).then_some(Failure::Replayed)
            }
            Ok(Verdict::Rejected) => Some(Failure::Wrong),
            Err(e) => {
                tracing::warn!(flow = %flow.id, provider, "MFA verification failed: {e}");
                Some(Failure::ProviderError)
            }
        };
        self.audit(
            &flow.person,
            "flow.mfa",
            json!({"flow": flow.id, "provider": provider, "accepted": failure.is_none()}),
        )
        .await?;
        let Some(failure) = failure else {
            flow.mfa_passed.push(provider.to_owned());
            return Ok(());
        };
        let locked = lockout::record_failure(
            &self.app.store,
            &self.app.config.mfa,
            &flow.person,
            provider,
            failure,
            Some(&flow.id),
            unix_now(),
        )
        .await
        .map_err(internal)?;
        flow.mfa_failures += 1;
        if let Some(until) = locked {
            self.fail(flow, &messages::mfa_locked(until - unix_now()))
                .await?;
        } else if flow.mfa_failures >= self.app.config.mfa.flow_attempts {
            self.fail(flow, messages::MFA_TOO_MANY).await?;
        } else {
            flow.notice = Some(messages::MFA_WRONG.into());
        }
        Ok(())
    }

    /// The end of the person's MFA lock, if one is in force.
    async fn mfa_lock(&self, flow: &Flow) -> Result<Option<i64>, FlowError> {
        lockout::locked_until(&self.app.store, &flow.person, unix_now())
            .await
            .map_err(internal)
    }

    pub(crate) async fn view_of(&self, flow: &Flow) -> Result<StepView, FlowError> {
        let message = flow.notice.clone();
        Ok(match self.current(flow)? {
            Current::ChooseCredential => {
                let mut options = self.credential_options(flow, unix_now()).await?;
                if !flow.advanced {
                    // Normal mode only prompts for a personal credential.
                    options.retain(|o| o.kind == CredentialKind::Personal);
                }
                StepView::ChooseCredential { message, options }
            }
            Current::Agreement => StepView::Agreement {
                message,
                text: messages::AGREEMENT.into(),
            },
            Current::ChooseMode => StepView::ChooseMode {
                message,
                options: self.modes_for(flow),
            },
            Current::Mfa(provider) => {
                let (label, prompt) = match self.registry.get(&provider) {
                    Some(PluginInstance::MfaProvider(p)) => {
                        let info = p.provider_info();
                        (info.label, info.prompt)
                    }
                    _ => (provider.clone(), String::new()),
                };
                StepView::Mfa {
                    message,
                    provider,
                    label,
                    prompt,
                    enrolled: true,
                }
            }
            Current::ChooseAccessLevel => {
                let policy = self.policy_of(flow)?;
                let options = policy
                    .levels_for(&flow.person)
                    .into_iter()
                    .map(|l| LevelOption {
                        id: l.id.clone(),
                        label: l.label.clone(),
                    })
                    .collect();
                StepView::ChooseAccessLevel { message, options }
            }
            Current::MasterPassword => {
                let jit = self
                    .app
                    .directory
                    .computer(&flow.computer)
                    .is_some_and(|c| c.jit);
                let delay_secs = if jit {
                    let elapsed = flow.master_prompt_at.map(|at| unix_now() - at).unwrap_or(0);
                    u32::try_from((i64::from(flow.connection_delay) - elapsed).max(0)).unwrap_or(0)
                } else {
                    0
                };
                StepView::MasterPassword {
                    message,
                    delay_secs,
                }
            }
            Current::Done(Outcome::Launched { token, .. }) => {
                let channel = flow
                    .mode
                    .as_deref()
                    .and_then(|m| self.registry_mode(m))
                    .map(|m| m.mode_info().channel)
                    .unwrap_or(Channel::Terminal);
                StepView::Launch {
                    channel,
                    tunnel: "/api/v1/tunnel".into(),
                    token,
                }
            }
            Current::Done(Outcome::Ended { reason }) => StepView::Ended { reason },
            Current::Done(Outcome::Failed { message }) => StepView::Failed { error: message },
        })
    }
}
