//! The OpenPSM workflow (the seed's steps 1 to 10) as a state machine over the store.
//!
//! A flow's current step is computed from its state ([`steps::current`]); an answer must name
//! that step; steps with one possible answer are taken by the server ([`Engine::settle`]) and
//! audited like the person's own answers. Pages and the JSON API drive the same engine.

mod checkout;
pub mod end_session;
mod jit;
mod launch;
pub mod mfa;
mod settle;
pub mod state;
pub mod steps;

use std::net::IpAddr;
use std::sync::Arc;

use openpsm_plugin_api::credential::ApiContext;
use openpsm_plugin_api::{
    CredentialKind, CredentialSource, ErrorKind, FlowSubject, PluginInstance,
};
use rand::RngCore as _;
use serde_json::json;
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use crate::app::App;
use crate::config::LinkAuthentication;
use crate::messages;
use crate::plugins::SharedRegistry;
use crate::startlink::{self, LinkError, ParamError};
use crate::store::{AuditEvent, unix_now};
pub use launch::Launch;
use state::{Chosen, Flow, FlowStore, Outcome, StateError};
pub use steps::{Answer, StepView};

/// Why a request about a flow was refused.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("{0}")]
    Link(#[from] LinkError),
    /// The seed's step-2 refusals and the access window, before any flow exists.
    #[error("{0}")]
    Denied(String),
    #[error("no such flow")]
    NotFound,
    #[error("not allowed to act on this flow")]
    Forbidden,
    #[error("this answers step {answered}, but the flow is at step {current}")]
    WrongStep { answered: String, current: String },
    #[error("the flow changed meanwhile; reload it")]
    Conflict,
    #[error("{0}")]
    BadAnswer(String),
    #[error("internal error")]
    Internal(String),
}

impl FlowError {
    /// A short machine-readable code for the JSON API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Link(LinkError::Params(ParamError::Missing(_))) => "missing_parameters",
            Self::Link(LinkError::Params(ParamError::Invalid(_))) => "invalid_parameters",
            Self::Link(LinkError::Unsigned | LinkError::BadSignature) => "invalid_link",
            Self::Link(LinkError::Expired) => "link_expired",
            Self::Link(LinkError::Replayed) => "link_used",
            Self::Denied(_) => "denied",
            Self::NotFound => "not_found",
            Self::Forbidden => "forbidden",
            Self::WrongStep { .. } => "wrong_step",
            Self::Conflict => "conflict",
            Self::BadAnswer(_) => "bad_answer",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status for it.
    pub fn status(&self) -> u16 {
        match self {
            Self::Link(LinkError::Params(_)) | Self::BadAnswer(_) => 400,
            Self::Link(_) | Self::Forbidden | Self::Denied(_) => 403,
            Self::NotFound => 404,
            Self::WrongStep { .. } | Self::Conflict => 409,
            Self::Internal(_) => 500,
        }
    }
}

impl From<StateError> for FlowError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::NotFound => Self::NotFound,
            StateError::Conflict => Self::Conflict,
            other => Self::Internal(other.to_string()),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> FlowError {
    FlowError::Internal(e.to_string())
}

/// A new flow: its id, the bearer secret for it, and its first step.
pub struct Started {
    pub flow: String,
    pub secret: String,
    pub step: StepView,
}

pub struct Engine {
    pub app: Arc<App>,
    pub registry: SharedRegistry,
    flows: FlowStore,
}

fn random_id() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Engine {
    pub fn new(app: Arc<App>, registry: SharedRegistry) -> Self {
        let flows = FlowStore::new(app.store.clone(), app.keys.vault.clone());
        Self {
            app,
            registry,
            flows,
        }
    }

    pub(crate) async fn audit(
        &self,
        actor: &Uuid,
        event: &str,
        detail: serde_json::Value,
    ) -> Result<(), FlowError> {
        let event = AuditEvent {
            actor: actor.to_string(),
            event: event.to_owned(),
            detail,
        };
        self.app
            .store
            .audit_append(unix_now(), &event)
            .await
            .map(|_| ())
            .map_err(internal)
    }

    fn subject(&self, flow: &Flow) -> FlowSubject {
        FlowSubject {
            person: flow.person,
            computer: flow.computer,
            computer_id: flow.computer_id.clone(),
            policy: flow.policy,
            login_session_id: flow.login_session_id.clone(),
            api: flow.api.clone(),
            credential_id: flow.credential_id.clone(),
            is_personal_cred: flow.is_personal_cred,
            external_credential: flow.external_credential,
        }
    }

    /// Step 1 (and the seed's step-2 refusals): checks the start link and opens a flow.
    pub async fn start(&self, raw_query: &str, client_ip: IpAddr) -> Result<Started, FlowError> {
        let now = unix_now();
        let lifetime = i64::try_from(self.app.config.links.max_lifetime_secs).unwrap_or(600);
        let p = match self.app.config.links.authentication {
            LinkAuthentication::Signed => {
                self.verified_link(raw_query, now, lifetime, client_ip)
                    .await?
            }
            LinkAuthentication::Iam => match startlink::parse_unsigned(raw_query) {
                Ok(p) => p,
                Err(e) => return Err(self.refuse_link(e, client_ip).await?),
            },
        };
        let invalid =
            |why: &str| FlowError::Link(LinkError::Params(ParamError::Invalid(why.to_owned())));
        let dir = &self.app.directory;
        dir.person(&p.target_person)
            .ok_or_else(|| invalid("unknown person"))?;
        let computer = dir
            .computer(&p.target_computer)
            .ok_or_else(|| invalid("unknown computer"))?;
        let policy = dir
            .policy(&p.access_request_policy)
            .ok_or_else(|| invalid("unknown policy"))?;
        if !policy.computers.contains(&computer.id) {
            return Err(invalid("the policy does not cover the computer"));
        }
        if let Some(url) = &p.api_url
            && !startlink::allow::allowed(&self.app.config.links.api_urls, url)
        {
            // Refused before any request: a crafted link cannot send a master password elsewhere.
            self.audit(
                &p.target_person,
                "link.refused",
                json!({"reason": "ApiUrl not on the allow-list", "api_url": url, "client": client_ip.to_string()}),
            )
            .await?;
            return Err(invalid("ApiUrl is not on the allow-list"));
        }
        let window_start = p.check_out_start.map(|t| t.unix_timestamp());
        let window_end = p.check_out_end.map(|t| t.unix_timestamp());
        if let Some(start) = window_start
            && now < start
        {
            self.audit(
                &p.target_person,
                "flow.refused",
                json!({"reason": "window not started"}),
            )
            .await?;
            return Err(FlowError::Denied(messages::WINDOW_NOT_STARTED.into()));
        }
        if let Some(end) = window_end
            && now >= end
        {
            self.audit(
                &p.target_person,
                "flow.refused",
                json!({"reason": "window over"}),
            )
            .await?;
            return Err(FlowError::Denied(messages::WINDOW_OVER.into()));
        }
        let api = p.api_key.as_ref().map(|key| ApiContext {
            url: p.api_url.clone().unwrap_or_default(),
            api_key: key.clone(),
            application_key: p.api_application_key.clone().unwrap_or_default(),
        });
        let mut flow = Flow {
            id: random_id(),
            person: p.target_person,
            policy: p.access_request_policy,
            computer: p.target_computer,
            computer_id: p
                .computer_id
                .clone()
                .or_else(|| Some(computer.computer_id.clone())),
            advanced: p.is_advance_mode,
            window_start,
            window_end,
            external_credential: p.external_credential,
            requested_mode: p.mode.map(|m| m.plugin_id().to_owned()),
            connection_delay: p.connection_delay_secs.unwrap_or(0),
            width: p.width,
            height: p.height,
            dpi: p.dpi,
            client_ip,
            login_session_id: p.login_session_id.clone(),
            api,
            credential_id: p.credential_id.clone(),
            is_personal_cred: p.is_personal_cred,
            session: Uuid::new_v4(),
            credential: None,
            agreed: false,
            mode: None,
            mfa_passed: Vec::new(),
            mfa_failures: 0,
            access_level: None,
            master_failures: 0,
            master_prompt_at: None,
            lease: None,
            injected: None,
            jit: None,
            jit_login: None,
            outcome: None,
            browser: String::new(),
            notice: None,
        };
        if self.app.config.links.authentication == LinkAuthentication::Iam {
            self.confirm_iam_session(&flow, client_ip).await?;
        }
        self.choose_initial_credential(&mut flow, now).await?;
        let secret = random_id();
        flow.browser = crate::token::browser_binding(&secret);
        let expires_at = now + i64::try_from(self.app.config.flows.ttl_secs).unwrap_or(1800);
        self.flows
            .insert(&flow, &state::secret_hash(&secret), now, expires_at)
            .await?;
        self.audit(
            &flow.person,
            "flow.started",
            json!({
                "flow": flow.id, "computer": flow.computer, "policy": flow.policy,
                "advanced": flow.advanced, "client": client_ip.to_string(),
                "credential": flow.credential.as_ref().map(|c| c.id.clone()),
            }),
        )
        .await?;
        let loaded = self.flows.load(&flow.id).await?;
        let step = self.settle_and_save(loaded.flow, loaded.version).await?;
        Ok(Started {
            flow: flow.id,
            secret,
            step,
        })
    }

    /// A signed link: signature, expiry, and its nonce consumed (once on any node).
    async fn verified_link(
        &self,
        raw_query: &str,
        now: i64,
        lifetime: i64,
        client_ip: IpAddr,
    ) -> Result<startlink::StartParams, FlowError> {
        let link = match startlink::verify(raw_query, &self.app.keys.link, now, lifetime) {
            Ok(link) => link,
            Err(e) => return Err(self.refuse_link(e, client_ip).await?),
        };
        if !self
            .app
            .store
            .consume_once("link", &link.nonce, link.expires_at)
            .await
            .map_err(internal)?
        {
            self.audit(
                &link.params.target_person,
                "link.replayed",
                json!({"client": client_ip.to_string()}),
            )
            .await?;
            return Err(LinkError::Replayed.into());
        }
        Ok(link.params)
    }

    /// Audits a refused link; the error to return.
    async fn refuse_link(&self, e: LinkError, client_ip: IpAddr) -> Result<FlowError, FlowError> {
        let detail = match &e {
            LinkError::Params(p) => p.detail(),
            other => other.to_string(),
        };
        self.audit(
            &Uuid::nil(),
            "link.refused",
            json!({"reason": detail, "client": client_ip.to_string()}),
        )
        .await?;
        Ok(e.into())
    }

    /// An unsigned (IAM) link: its LoginSessionID and access token confirmed by the source.
    async fn confirm_iam_session(&self, flow: &Flow, client_ip: IpAddr) -> Result<(), FlowError> {
        let checked = self.source()?.authenticate(&self.subject(flow)).await;
        let Err(e) = checked else {
            return Ok(());
        };
        tracing::warn!(person = %flow.person, "the IAM did not confirm a start link: {e}");
        self.audit(
            &flow.person,
            "link.refused",
            json!({"reason": "the IAM did not confirm the session", "kind": e.kind, "client": client_ip.to_string()}),
        )
        .await?;
        Err(FlowError::Denied(match e.kind {
            ErrorKind::TokenExpired => messages::TOKEN_EXPIRED.into(),
            ErrorKind::Unauthorized => messages::IAM_REFUSED.into(),
            _ => messages::IAM_UNAVAILABLE.into(),
        }))
    }

    /// The configured credential source: the embedded vault or a `CredentialSource` plugin.
    pub(crate) fn source(&self) -> Result<Arc<dyn CredentialSource>, FlowError> {
        let id = &self.app.config.credentials.source;
        if id == "vault" {
            return Ok(self.app.vault.clone());
        }
        match self.registry.get(id) {
            Some(PluginInstance::CredentialSource(s)) => Ok(s.clone()),
            _ => Err(internal(format!(
                "credentials.source = {id:?} is not an active credential-source plugin"
            ))),
        }
    }

    /// Whether credentials come from the embedded vault (which the gateway can inspect).
    pub(crate) fn uses_vault(&self) -> bool {
        self.app.config.credentials.source == "vault"
    }

    /// Start-up check: the configured source exists, and at most one account provisioner is
    /// active (which one makes JIT accounts must not depend on plugin names).
    pub fn check_source(&self) -> Result<(), String> {
        self.source().map_err(|e| match e {
            FlowError::Internal(m) => m,
            other => other.to_string(),
        })?;
        let provisioners: Vec<&String> = self
            .registry
            .active()
            .iter()
            .filter(|(_, p)| matches!(p, PluginInstance::AccountProvisioner(_)))
            .map(|(id, _)| id)
            .collect();
        if provisioners.len() > 1 {
            return Err(format!(
                "more than one account provisioner is enabled ({}): enable one",
                provisioners
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(())
    }

    /// Step 2: are there credentials at all; in normal mode, take the one the link names or a
    /// free shared one; otherwise the person chooses (step 3).
    async fn choose_initial_credential(&self, flow: &mut Flow, now: i64) -> Result<(), FlowError> {
        let options = self.credential_options(flow, now).await?;
        let own: Vec<_> = options
            .iter()
            .filter(|o| o.kind == CredentialKind::Personal)
            .collect();
        let shared: Vec<_> = options
            .iter()
            .filter(|o| o.kind == CredentialKind::Shared)
            .collect();
        if let Some(external) = flow.external_credential
            && !self.uses_vault()
        {
            // The IAM chose it; the source offers exactly what the link names.
            let id = external.to_string();
            let Some(o) = options.iter().find(|o| o.id == id) else {
                return Err(FlowError::Link(LinkError::Params(ParamError::Invalid(
                    "ExternalCredentialGuid is not offered by the credential source".into(),
                ))));
            };
            flow.credential = Some(Chosen {
                id: o.id.clone(),
                kind: o.kind,
                label: o.label.clone(),
            });
            return Ok(());
        }
        if let Some(external) = flow.external_credential {
            let id = external.to_string();
            let entry = self.app.vault.entry(&id).await.map_err(|_| {
                FlowError::Link(LinkError::Params(ParamError::Invalid(
                    "unknown ExternalCredentialGuid".into(),
                )))
            })?;
            if entry.kind == CredentialKind::Personal && entry.owner != Some(flow.person) {
                self.audit(
                    &flow.person,
                    "flow.refused",
                    json!({"reason": "someone else's personal credential", "credential": id}),
                )
                .await?;
                return Err(FlowError::Denied(messages::SOMEONE_ELSES_CREDENTIAL.into()));
            }
            if entry.computer != flow.computer {
                return Err(FlowError::Link(LinkError::Params(ParamError::Invalid(
                    "ExternalCredentialGuid is for another computer".into(),
                ))));
            }
            flow.credential = Some(Chosen {
                id: entry.id,
                kind: entry.kind,
                label: entry.label,
            });
            return Ok(());
        }
        if own.is_empty() && shared.is_empty() {
            self.audit(
                &flow.person,
                "flow.refused",
                json!({"reason": "no credentials"}),
            )
            .await?;
            return Err(FlowError::Denied(messages::NO_CREDENTIALS.into()));
        }
        let free_shared = shared.iter().find(|o| o.available);
        if own.is_empty() && free_shared.is_none() {
            self.audit(
                &flow.person,
                "flow.refused",
                json!({"reason": "all shared credentials in use"}),
            )
            .await?;
            return Err(FlowError::Denied(messages::SHARED_IN_USE.into()));
        }
        if !flow.advanced
            && let Some(o) = free_shared
        {
            flow.credential = Some(Chosen {
                id: o.id.clone(),
                kind: o.kind,
                label: o.label.clone(),
            });
        }
        Ok(())
    }

    /// The credentials the person may choose, shared ones marked by whether they are free.
    pub(crate) async fn credential_options(
        &self,
        flow: &Flow,
        now: i64,
    ) -> Result<Vec<steps::CredentialOption>, FlowError> {
        let refs = self
            .source()?
            .list(&self.subject(flow))
            .await
            .map_err(internal)?;
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            let available = match r.kind {
                CredentialKind::Personal => true,
                CredentialKind::Shared => match self
                    .app
                    .store
                    .lease_holder(&r.id, now)
                    .await
                    .map_err(internal)?
                {
                    None => true,
                    Some(holder) => holder == flow.id,
                },
            };
            out.push(steps::CredentialOption {
                id: r.id,
                label: r.label,
                kind: r.kind,
                available,
            });
        }
        Ok(out)
    }

    async fn load_authorized(&self, id: &str, secret: &str) -> Result<state::Loaded, FlowError> {
        let loaded = self.flows.load(id).await?;
        let given = state::secret_hash(secret);
        if !bool::from(given.as_bytes().ct_eq(loaded.secret_hash.as_bytes())) {
            return Err(FlowError::Forbidden);
        }
        if loaded.expires_at <= unix_now() && loaded.flow.outcome.is_none() {
            let mut flow = loaded.flow;
            self.finish(
                &mut flow,
                Outcome::Ended {
                    reason: messages::EXPIRED.into(),
                },
            )
            .await?;
            self.flows.save(&flow, loaded.version, unix_now()).await?;
            return Err(FlowError::NotFound);
        }
        Ok(loaded)
    }

    pub async fn view(&self, id: &str, secret: &str) -> Result<StepView, FlowError> {
        let loaded = self.load_authorized(id, secret).await?;
        self.view_of(&loaded.flow).await
    }

    pub async fn answer(
        &self,
        id: &str,
        secret: &str,
        answer: Answer,
    ) -> Result<StepView, FlowError> {
        let loaded = self.load_authorized(id, secret).await?;
        let mut flow = loaded.flow;
        let current = self.current(&flow)?;
        if current.name() != answer.step() {
            return Err(FlowError::WrongStep {
                answered: answer.step().into(),
                current: current.name().into(),
            });
        }
        flow.notice = None;
        self.apply(&mut flow, current, answer).await?;
        self.settle_and_save(flow, loaded.version).await
    }

    /// The person (or the page closing) cancels: everything the flow holds is given back.
    pub async fn cancel(&self, id: &str, secret: &str) -> Result<StepView, FlowError> {
        let loaded = self.load_authorized(id, secret).await?;
        let mut flow = loaded.flow;
        if flow.outcome.is_none() || matches!(flow.outcome, Some(Outcome::Launched { .. })) {
            self.finish(
                &mut flow,
                Outcome::Ended {
                    reason: messages::CANCELLED.into(),
                },
            )
            .await?;
            self.flows.save(&flow, loaded.version, unix_now()).await?;
        }
        self.view_of(&flow).await
    }

    /// Ends flows past their time, giving back what they hold. Returns how many it ended.
    pub async fn sweep(&self) -> Result<usize, FlowError> {
        let now = unix_now();
        let mut ended = 0;
        for id in self.flows.expired(now).await? {
            let Ok(loaded) = self.flows.load(&id).await else {
                continue;
            };
            let mut flow = loaded.flow;
            if flow.outcome.is_none() || matches!(flow.outcome, Some(Outcome::Launched { .. })) {
                self.finish(
                    &mut flow,
                    Outcome::Ended {
                        reason: messages::EXPIRED.into(),
                    },
                )
                .await?;
                ended += 1;
            }
            self.flows.delete(&id).await?;
        }
        self.app.store.purge_consumed(now).await.map_err(internal)?;
        self.app
            .store
            // Kept as long as the longest window that counts them (MFA's may exceed an hour).
            .purge_failures(
                now - i64::try_from(self.app.config.mfa.failure_window_secs.max(3600))
                    .unwrap_or(86_400),
            )
            .await
            .map_err(internal)?;
        if let Err(e) = self.sweep_jit().await {
            tracing::warn!("sweeping just-in-time accounts failed: {e}");
        }
        Ok(ended)
    }

    pub(crate) fn registry_mode(
        &self,
        id: &str,
    ) -> Option<Arc<dyn openpsm_plugin_api::ConnectionMode>> {
        match self.registry.get(id) {
            Some(PluginInstance::ConnectionMode(m)) => Some(m.clone()),
            _ => None,
        }
    }
}
