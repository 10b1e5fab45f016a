//! What crosses the boundary inside the abi_stable frame: method names, payloads, frames.

use std::time::SystemTime;

use base64::Engine as _;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{ErrorKind, Origin, PluginError, PluginResult};
use crate::info::PluginInfo;
use crate::mfa::{EnrolledSecret, ProviderInfo};
use crate::mode::{Frame, Input, ModeInfo};
use crate::recorder::StoredRecording;
use crate::secret::SecretText;
use crate::types::Subject;

/// The method names of [`super::FfiPlugin::call`].
pub mod method {
    pub const HEALTH: &str = "health";
    pub const MFA_ENROLL: &str = "mfa.enroll";
    pub const MFA_VERIFY: &str = "mfa.verify";
    pub const CREDENTIAL_LIST: &str = "credential.list";
    pub const CREDENTIAL_CHECK_OUT: &str = "credential.check_out";
    pub const CREDENTIAL_END_SESSION: &str = "credential.end_session";
    pub const CREDENTIAL_AUTHENTICATE: &str = "credential.authenticate";
    pub const RECORDER_STORE: &str = "recorder.store";
    pub const RECORDER_READ: &str = "recorder.read";
    pub const PROVISIONER_CREATE: &str = "provisioner.create";
    pub const PROVISIONER_REMOVE: &str = "provisioner.remove";
    pub const PROVISIONER_OWNED: &str = "provisioner.owned";
}

/// The sync parts of an instance, read once when it is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub plugin: PluginInfo,
    pub mode: Option<ModeInfo>,
    pub mfa: Option<ProviderInfo>,
}

/// What `instantiate` receives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstantiateArgs {
    pub host: crate::info::HostContext,
    pub settings: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyArgs {
    pub who: Subject,
    pub secret: EnrolledSecret,
    pub response: SecretText,
    pub now: SystemTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadArgs {
    pub rec: StoredRecording,
    pub file: String,
    pub offset: u64,
    pub max_len: u32,
}

/// Bytes as base64 inside JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bytes)
            .map_err(serde::de::Error::custom)
    }
}

/// Serializes a value for the boundary.
pub fn to_json<T: Serialize>(value: &T) -> PluginResult<String> {
    serde_json::to_string(value)
        .map_err(|e| PluginError::new(Origin::Host, ErrorKind::Internal, format!("encoding: {e}")))
}

/// Parses a value that came over the boundary; `what` names it in the error.
pub fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> PluginResult<T> {
    serde_json::from_str(text).map_err(|e| {
        PluginError::new(
            Origin::Host,
            ErrorKind::Protocol,
            format!("malformed {what} across the plugin boundary: {e}"),
        )
    })
}

/// An error as it crosses the boundary.
pub fn error_to_wire(err: &PluginError) -> String {
    serde_json::to_string(err).unwrap_or_else(|_| {
        r#"{"origin":"host","kind":"internal","retryable":false,"message":"unencodable error"}"#
            .to_owned()
    })
}

/// An error that came over the boundary; a malformed one becomes a protocol error.
pub fn error_from_wire(text: &str) -> PluginError {
    serde_json::from_str(text).unwrap_or_else(|_| {
        let shown: String = text.chars().take(200).collect();
        PluginError::new(
            Origin::Host,
            ErrorKind::Protocol,
            format!("plugin returned a malformed error: {shown}"),
        )
    })
}

const TAG_BYTES: u8 = 0;
const TAG_JSON: u8 = 1;

/// Terminal bytes cross as they are (one tag byte in front); every other frame as JSON.
pub fn encode_frame(frame: &Frame) -> PluginResult<Vec<u8>> {
    match frame {
        Frame::Terminal(bytes) => Ok(tagged(TAG_BYTES, bytes)),
        other => Ok(tagged(TAG_JSON, to_json(other)?.as_bytes())),
    }
}

pub fn decode_frame(data: &[u8]) -> PluginResult<Frame> {
    match data.split_first() {
        Some((&TAG_BYTES, rest)) => Ok(Frame::Terminal(rest.to_vec())),
        Some((&TAG_JSON, rest)) => json_bytes("frame", rest),
        _ => Err(bad_tag("frame")),
    }
}

pub fn encode_input(input: &Input) -> PluginResult<Vec<u8>> {
    match input {
        Input::Bytes(bytes) => Ok(tagged(TAG_BYTES, bytes)),
        other => Ok(tagged(TAG_JSON, to_json(other)?.as_bytes())),
    }
}

pub fn decode_input(data: &[u8]) -> PluginResult<Input> {
    match data.split_first() {
        Some((&TAG_BYTES, rest)) => Ok(Input::Bytes(rest.to_vec())),
        Some((&TAG_JSON, rest)) => json_bytes("input", rest),
        _ => Err(bad_tag("input")),
    }
}

fn tagged(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(tag);
    out.extend_from_slice(body);
    out
}

fn json_bytes<T: DeserializeOwned>(what: &str, data: &[u8]) -> PluginResult<T> {
    serde_json::from_slice(data).map_err(|e| {
        PluginError::new(
            Origin::Host,
            ErrorKind::Protocol,
            format!("malformed {what} across the plugin boundary: {e}"),
        )
    })
}

fn bad_tag(what: &str) -> PluginError {
    PluginError::new(
        Origin::Host,
        ErrorKind::Protocol,
        format!("malformed {what} across the plugin boundary: unknown tag"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Notice;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn terminal_frames_and_inputs_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let f = Frame::Terminal(bytes.clone());
            prop_assert_eq!(decode_frame(&encode_frame(&f).unwrap()).unwrap(), f);
            let i = Input::Bytes(bytes);
            prop_assert_eq!(decode_input(&encode_input(&i).unwrap()).unwrap(), i);
        }

        #[test]
        fn arbitrary_wire_data_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frame(&data);
            let _ = decode_input(&data);
            let _ = error_from_wire(&String::from_utf8_lossy(&data));
        }

        #[test]
        fn display_text_round_trips(text in "\\PC*") {
            let f = Frame::Display(text);
            prop_assert_eq!(decode_frame(&encode_frame(&f).unwrap()).unwrap(), f);
        }
    }

    #[test]
    fn json_frames_and_bad_tags() {
        let f = Frame::Notice(Notice::Connected { host: "a".into() });
        assert_eq!(decode_frame(&encode_frame(&f).unwrap()).unwrap(), f);
        assert_eq!(decode_frame(&[]).unwrap_err().kind, ErrorKind::Protocol);
        assert_eq!(decode_input(&[9, 1]).unwrap_err().kind, ErrorKind::Protocol);
        let b = Bytes(vec![0, 255, 7]);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<Bytes>(&json).unwrap(), b);
        assert!(serde_json::from_str::<Bytes>("\"!!\"").is_err());
    }
}
