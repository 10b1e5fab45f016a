//! Connecting: TCP, X.224 negotiation, TLS with certificate pinning, CredSSP or TLS security,
//! the RDP connection sequence with auto-logon, all within the connect timeout, with fail-over
//! across the computer's servers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ironrdp_connector::sspi::generator::NetworkRequest;
use ironrdp_connector::{
    BitmapConfig, ClientConnector, ConnectionResult, ConnectorError, ConnectorResult, Credentials,
    DesktopSize, ServerName,
};
use ironrdp_displaycontrol::client::DisplayControlClient;
use ironrdp_dvc::DrdynvcClient;
use ironrdp_pdu::gcc::{ConnectionType, KeyboardType};
use ironrdp_pdu::rdp::capability_sets::{MajorPlatformType, RailSupportLevel};
use ironrdp_pdu::rdp::client_info::{CompressionType, PerformanceFlags, TimezoneInfo};
use ironrdp_tokio::TokioFramed;
use openpsm_plugin_api::mode::{CredentialSecret, Notice};
use openpsm_plugin_api::{
    ErrorKind, Frame, OpenRequest, Origin, PluginError, PluginResult, SessionIo,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName as TlsName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::Rdp;

pub type Stream = TlsStream<TcpStream>;
pub type Framed = TokioFramed<Stream>;

/// A logged-in RDP connection, ready for the active stage.
pub struct Connected {
    pub framed: Framed,
    pub result: ConnectionResult,
    pub host: String,
    pub fingerprint: String,
}

/// "sha256:" and the lowercase hex SHA-256 of the certificate's DER.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Accepts the server certificate when it is pinned, or when nothing is pinned (trust on first
/// use, reported to the host); remembers what it saw. RDP servers present self-signed
/// certificates, so the chain is not checked against any root: the pin is the trust.
#[derive(Debug)]
struct PinVerifier {
    pinned: Vec<String>,
    seen: Arc<Mutex<Option<String>>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &TlsName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let print = fingerprint(end_entity);
        let accepted = self.pinned.is_empty()
            || self
                .pinned
                .iter()
                .any(|p| p.trim().eq_ignore_ascii_case(&print));
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(print);
        }
        if accepted {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// CredSSP without Kerberos never asks for the network.
struct NoNetwork;

impl ironrdp_tokio::NetworkClient for NoNetwork {
    async fn send(&mut self, _request: &NetworkRequest) -> ConnectorResult<Vec<u8>> {
        Err(ironrdp_connector::general_err!(
            "Kerberos is not supported: the KDC cannot be reached",
        ))
    }
}

/// `DOMAIN\user` becomes domain and user; an explicit domain wins.
pub fn split_user(user: &str, domain: Option<&str>) -> (String, Option<String>) {
    let explicit = domain.filter(|d| !d.is_empty()).map(str::to_owned);
    match user.split_once('\\') {
        Some((prefix, name)) => (
            name.to_owned(),
            explicit.or_else(|| (!prefix.is_empty()).then(|| prefix.to_owned())),
        ),
        None => (user.to_owned(), explicit),
    }
}

fn target(kind: ErrorKind, message: impl Into<String>) -> PluginError {
    PluginError::new(Origin::Target, kind, message)
}

fn connector_config(rdp: &Rdp, req: &OpenRequest) -> PluginResult<ironrdp_connector::Config> {
    let CredentialSecret::Password(password) = &req.credential.secret else {
        return Err(PluginError::invalid_input(
            "the rdp mode logs in with a password, not a private key",
        ));
    };
    let (username, domain) = split_user(&req.credential.user, req.credential.domain.as_deref());
    let clamp = |v: u32| u16::try_from(v.clamp(200, 8192)).unwrap_or(1024);
    let codecs = if rdp.remotefx {
        ironrdp_pdu::rdp::capability_sets::client_codecs_capabilities(&[])
            .map_err(PluginError::internal)?
    } else {
        ironrdp_pdu::rdp::capability_sets::client_codecs_capabilities(&["remotefx:off"])
            .map_err(PluginError::internal)?
    };
    let (width, height) = (clamp(req.display.width) & !1, clamp(req.display.height));
    let scale = dpi_scale(req.display.dpi);
    Ok(ironrdp_connector::Config {
        desktop_size: DesktopSize { width, height },
        monitor_layout: None,
        desktop_scale_factor: scale.desktop,
        desktop_physical_size: scale.physical(width, height),
        desktop_orientation: None,
        device_scale_factor: scale.device,
        monitor_extended_layout: None,
        relative_mouse_input: false,
        enable_tls: true,
        enable_credssp: true,
        enable_standard_rdp_security: false,
        credentials: Credentials::UsernamePassword {
            username,
            password: password.expose_secret().to_owned(),
        },
        domain,
        client_build: 0,
        client_name: "openpsm".into(),
        keyboard_type: KeyboardType::IBM_ENHANCED,
        keyboard_subtype: 0,
        keyboard_functional_keys_count: 12,
        keyboard_layout: 0x409,
        connection_type: ConnectionType::Lan,
        ime_file_name: String::new(),
        bitmap: Some(BitmapConfig {
            lossy_compression: true,
            color_depth: 32,
            codecs,
        }),
        dig_product_id: String::new(),
        client_dir: "C:\\Windows\\System32\\mstscax.dll".into(),
        alternate_shell: String::new(),
        work_dir: String::new(),
        remote_application_mode: false,
        rail_support_level: RailSupportLevel::empty(),
        platform: MajorPlatformType::UNIX,
        hardware_id: None,
        request_data: None,
        autologon: true,
        enable_audio_playback: false,
        enable_audio_capture: false,
        performance_flags: PerformanceFlags::default(),
        license_cache: None,
        timezone_info: TimezoneInfo::default(),
        compression_type: rdp.compression.then_some(CompressionType::Rdp61),
        enable_server_pointer: true,
        pointer_software_rendering: false,
        multitransport_flags: None,
        support_dyn_vc_gfx_protocol: false,
    })
}

/// Connects to the first server that answers. A certificate that is not pinned fails at once:
/// trying the next server would hide an attack.
pub async fn connect(rdp: &Rdp, req: &OpenRequest, io: &SessionIo) -> PluginResult<Connected> {
    let config = connector_config(rdp, req)?;
    let mut last = String::from("no server configured");
    for host in &req.hosts {
        let seen = Arc::new(Mutex::new(None));
        let attempt = tokio::time::timeout(
            rdp.connect_timeout,
            connect_one(config.clone(), host, req, seen.clone()),
        )
        .await;
        let seen_print = seen.lock().ok().and_then(|s| s.clone());
        match attempt {
            Ok(Ok(connected)) => return Ok(connected),
            Ok(Err(Attempt::Fatal(e))) => return Err(e),
            Ok(Err(Attempt::Mismatch)) => {
                return Err(target(
                    ErrorKind::HostKeyMismatch,
                    format!(
                        "the certificate of {host}:{} ({}) is not the pinned one: refusing to connect",
                        req.port,
                        seen_print.unwrap_or_else(|| "unknown".into())
                    ),
                )
                .with_retryable(false));
            }
            Ok(Err(Attempt::Next(message))) => last = format!("{host}:{}: {message}", req.port),
            Err(_) => {
                last = format!(
                    "{host}:{}: no answer within {} s",
                    req.port,
                    rdp.connect_timeout.as_secs()
                );
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

enum Attempt {
    /// This server failed to answer: try the next one.
    Next(String),
    /// The certificate is not pinned.
    Mismatch,
    /// The server answered and refused (credential, protocol): do not try others.
    Fatal(PluginError),
}

async fn connect_one(
    config: ironrdp_connector::Config,
    host: &str,
    req: &OpenRequest,
    seen: Arc<Mutex<Option<String>>>,
) -> Result<Connected, Attempt> {
    let tcp = TcpStream::connect((host, req.port))
        .await
        .map_err(|e| Attempt::Next(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let client_addr: SocketAddr = tcp.local_addr().map_err(|e| Attempt::Next(e.to_string()))?;
    let mut framed = TokioFramed::new(tcp);

    let display_control = DisplayControlClient::new(|_| Ok(Vec::new()));
    let mut connector = ClientConnector::new(config, client_addr)
        .with_static_channel(DrdynvcClient::new().with_dynamic_channel(display_control));
    // The clipboard channel only where the policy lets text through one way or the other.
    if req.policy.allow_copy || req.policy.allow_paste {
        connector.attach_static_channel(crate::clipboard::channel());
    }

    let protocol = |what: &str, e: &dyn std::fmt::Display| {
        Attempt::Fatal(target(
            ErrorKind::Protocol,
            format!("{host}:{}: {what}: {e}", req.port),
        ))
    };
    let should_upgrade = ironrdp_tokio::connect_begin(&mut framed, &mut connector)
        .await
        .map_err(|e| Attempt::Next(format!("RDP negotiation failed: {}", report(&e))))?;

    let (tcp, leftover) = framed.into_inner();
    let (tls, public_key) = upgrade(tcp, host, &req.pinned_keys, seen.clone())
        .await
        .map_err(|e| {
            let mismatch = !req.pinned_keys.is_empty()
                && seen
                    .lock()
                    .ok()
                    .and_then(|s| s.clone())
                    .is_some_and(|print| {
                        !req.pinned_keys
                            .iter()
                            .any(|p| p.trim().eq_ignore_ascii_case(&print))
                    });
            if mismatch {
                Attempt::Mismatch
            } else {
                protocol("TLS failed", &e)
            }
        })?;
    let fingerprint = seen
        .lock()
        .ok()
        .and_then(|s| s.clone())
        .ok_or_else(|| protocol("TLS failed", &"no server certificate"))?;
    let mut framed = TokioFramed::new_with_leftover(tls, leftover);
    let upgraded = ironrdp_tokio::mark_as_upgraded(should_upgrade, &mut connector);
    let outcome = ironrdp_tokio::connect_finalize(
        upgraded,
        connector,
        &mut framed,
        &mut NoNetwork,
        ServerName::new(host),
        public_key,
        None,
    )
    .await
    .map_err(|e| Attempt::Fatal(login_error(host, req.port, &e)))?;
    let result = outcome
        .into_connected()
        .map_err(|e| protocol("connection", &report(&e)))?;
    Ok(Connected {
        framed,
        result,
        host: host.to_owned(),
        fingerprint,
    })
}

fn report(e: &ConnectorError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn login_error(host: &str, port: u16, e: &ConnectorError) -> PluginError {
    let text = report(e);
    let lower = text.to_ascii_lowercase();
    if lower.contains("logon")
        || lower.contains("credssp")
        || lower.contains("denied")
        || lower.contains("authentication")
    {
        target(
            ErrorKind::Unauthorized,
            format!("{host}:{port} refused the credential: {text}"),
        )
        .with_retryable(false)
    } else {
        target(ErrorKind::Protocol, format!("{host}:{port}: {text}"))
    }
}

/// TLS over the negotiated connection; returns the stream and the server's public key (for
/// CredSSP's channel binding).
async fn upgrade(
    tcp: TcpStream,
    host: &str,
    pinned: &[String],
    seen: Arc<Mutex<Option<String>>>,
) -> std::io::Result<(Stream, Vec<u8>)> {
    use tokio::io::AsyncWriteExt as _;
    use x509_cert::der::Decode as _;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = PinVerifier {
        pinned: pinned.to_vec(),
        seen,
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // CredSSP binds to this very TLS session's key: no resumption.
    config.resumption = rustls::client::Resumption::disabled();
    let name = TlsName::try_from(host.to_owned())
        .or_else(|_| TlsName::try_from("localhost".to_owned()))
        .map_err(std::io::Error::other)?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    tls.flush().await?;
    let der = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| std::io::Error::other("the server sent no certificate"))?;
    let cert = x509_cert::Certificate::from_der(der).map_err(std::io::Error::other)?;
    let key = ironrdp_tls::extract_tls_server_public_key(&cert)
        .ok_or_else(|| std::io::Error::other("the server certificate has no public key"))?
        .to_vec();
    Ok((tls, key))
}

/// Makes sure rustls has a process-wide provider (other crates in the gateway may enable ring).
pub fn install_crypto_provider() {
    if CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_domains() {
        assert_eq!(
            split_user("CORP\\alice", None),
            ("alice".into(), Some("CORP".into()))
        );
        assert_eq!(
            split_user("CORP\\alice", Some("OTHER")),
            ("alice".into(), Some("OTHER".into()))
        );
        assert_eq!(split_user("bob", None), ("bob".into(), None));
        assert_eq!(split_user("bob", Some("")), ("bob".into(), None));
        assert_eq!(
            split_user("bob@corp.example", None),
            ("bob@corp.example".into(), None)
        );
    }

    #[test]
    fn fingerprint_format() {
        let f = fingerprint(b"abc");
        assert_eq!(
            f,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

/// GUAC_DPI as RDP scale factors (MS-RDPBCGR 2.2.1.3.2): the desktop scale in percent of 96 DPI
/// (100 to 500), the device scale as one of 100, 140, 180, and the physical size in millimetres
/// that makes the server compute the same DPI. 96 DPI (or none) asks for no scaling.
pub struct DpiScale {
    pub desktop: u32,
    pub device: Option<u32>,
    dpi: u32,
}

pub fn dpi_scale(dpi: u32) -> DpiScale {
    if dpi == 0 || dpi == 96 {
        return DpiScale {
            desktop: 0,
            device: None,
            dpi: 96,
        };
    }
    let desktop = (dpi * 100 / 96).clamp(100, 500);
    let device = match desktop {
        0..=119 => 100,
        120..=159 => 140,
        _ => 180,
    };
    DpiScale {
        desktop,
        device: Some(device),
        dpi: dpi.clamp(48, 480),
    }
}

impl DpiScale {
    /// Millimetres for `pixels` at this DPI; None when no scaling is asked for.
    pub fn physical(&self, width: u16, height: u16) -> Option<(u32, u32)> {
        self.device?;
        let mm = |px: u16| u32::from(px) * 254 / (self.dpi * 10);
        Some((mm(width), mm(height)))
    }
}

#[cfg(test)]
mod dpi_tests {
    use super::*;

    #[test]
    fn guac_dpi_becomes_scale_factors() {
        let none = dpi_scale(96);
        assert_eq!((none.desktop, none.device), (0, None));
        assert_eq!(none.physical(1024, 768), None);
        let hi = dpi_scale(192);
        assert_eq!((hi.desktop, hi.device), (200, Some(180)));
        assert_eq!(hi.physical(1920, 1080), Some((254, 142)));
        let mid = dpi_scale(120);
        assert_eq!((mid.desktop, mid.device), (125, Some(140)));
        assert_eq!(dpi_scale(2000).desktop, 500);
    }
}
