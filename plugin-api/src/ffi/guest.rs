//! The library side: what [`crate::export_plugin!`] expands to calls these.
//!
//! Every function runs its body inside `catch_unwind` and returns an error value instead of
//! unwinding; async trait methods run on a tokio runtime the library owns (the library has its own
//! copy of tokio, so the host's runtime is not visible here).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RStr, RString};

use super::codec::{self, InstanceInfo, InstantiateArgs, method};
use super::{FfiPlugin, FfiPlugin_TO, FfiPluginBox, FfiRecv, FfiSessionIoBox, LogSink};
use crate::error::{ErrorKind, Origin, PluginError, PluginResult};
use crate::info::PluginInfo;
use crate::mode::{Input, SessionIo};
use crate::plugin::{PluginInstance, PluginSettings};

/// Frames and inputs buffered inside the library per session; back-pressure beyond this reaches
/// the mode through its bounded channel.
const SESSION_BUFFER: usize = 64;
/// How often the input pump looks whether the session is over.
const INPUT_POLL: Duration = Duration::from_millis(200);

fn runtime() -> PluginResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("openpsm-plugin")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| PluginError::internal(format!("plugin runtime could not start: {e}")))
}

/// Runs `body`, turning a panic into a `Panicked` error.
fn guarded<T>(body: impl FnOnce() -> PluginResult<T>) -> PluginResult<T> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => Err(PluginError::new(
            Origin::Plugin,
            ErrorKind::Panicked,
            format!(
                "plugin panicked: {}",
                super::log::panic_text(payload.as_ref())
            ),
        )),
    }
}

fn to_ffi(result: PluginResult<String>) -> RResult<RString, RString> {
    match result {
        Ok(text) => RResult::ROk(RString::from(text)),
        Err(err) => RResult::RErr(RString::from(codec::error_to_wire(&err))),
    }
}

/// The body of the exported `describe`.
pub fn describe(info: fn() -> PluginInfo) -> RResult<RString, RString> {
    to_ffi(guarded(|| codec::to_json(&info())))
}

/// The body of the exported `instantiate`.
pub fn instantiate(
    args: RStr<'_>,
    sink: LogSink,
    info: fn() -> PluginInfo,
    build: fn(PluginSettings) -> PluginResult<PluginInstance>,
) -> RResult<FfiPluginBox, RString> {
    let built = guarded(|| {
        let args: InstantiateArgs = codec::from_json("plugin settings", args.as_str())?;
        super::log::install_in_guest(sink, &info().id);
        let settings = PluginSettings {
            host: args.host,
            settings: args.settings,
        };
        // Constructors may start async work (a client, a pool): give them the runtime.
        let _entered = runtime()?.enter();
        build(settings)
    });
    match built {
        Ok(instance) => RResult::ROk(wrap(instance)),
        Err(err) => RResult::RErr(RString::from(codec::error_to_wire(&err))),
    }
}

/// Wraps a built plugin as the boundary's trait object.
pub fn wrap(instance: PluginInstance) -> FfiPluginBox {
    FfiPlugin_TO::from_value(GuestPlugin { instance }, TD_Opaque)
}

struct GuestPlugin {
    instance: PluginInstance,
}

impl FfiPlugin for GuestPlugin {
    fn describe_instance(&self) -> RString {
        let described = guarded(|| {
            let info = InstanceInfo {
                plugin: self.instance.plugin().info(),
                mode: match &self.instance {
                    PluginInstance::ConnectionMode(m) => Some(m.mode_info()),
                    _ => None,
                },
                mfa: match &self.instance {
                    PluginInstance::MfaProvider(m) => Some(m.provider_info()),
                    _ => None,
                },
            };
            codec::to_json(&info)
        });
        // An error here is reported as JSON that does not parse as InstanceInfo: the host then
        // refuses the plugin with the error's message.
        RString::from(described.unwrap_or_else(|e| codec::error_to_wire(&e)))
    }

    fn call(&self, method: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString> {
        to_ffi(guarded(|| {
            let rt = runtime()?;
            rt.block_on(dispatch(&self.instance, method.as_str(), payload.as_str()))
        }))
    }

    fn run_session(&self, request: RStr<'_>, io: FfiSessionIoBox) -> RResult<RString, RString> {
        to_ffi(guarded(|| {
            let PluginInstance::ConnectionMode(mode) = &self.instance else {
                return Err(wrong_kind("run_session"));
            };
            let req = codec::from_json("session request", request.as_str())?;
            let rt = runtime()?;
            let io = Arc::new(io);
            let (session_io, ends) = SessionIo::pair(SESSION_BUFFER);
            let done = Arc::new(AtomicBool::new(false));
            let mut frames = ends.frames;
            let frame_io = io.clone();
            let frame_pump = std::thread::Builder::new()
                .name("openpsm-plugin-frames".into())
                .spawn(move || {
                    while let Some(frame) = frames.blocking_recv() {
                        let Ok(data) = codec::encode_frame(&frame) else {
                            continue;
                        };
                        if !frame_io.send(data.into()) {
                            break;
                        }
                    }
                })
                .map_err(|e| PluginError::internal(format!("cannot start frame pump: {e}")))?;
            let inputs = ends.inputs;
            let input_done = done.clone();
            std::thread::Builder::new()
                .name("openpsm-plugin-input".into())
                .spawn(move || pump_inputs(&io, &inputs, &input_done))
                .map_err(|e| PluginError::internal(format!("cannot start input pump: {e}")))?;
            let result = rt.block_on(mode.run(req, session_io));
            done.store(true, Ordering::SeqCst);
            // The mode's sender is gone with `run`: the pump drains what is left, then stops.
            let _ = frame_pump.join();
            codec::to_json(&result?)
        }))
    }
}

fn pump_inputs(io: &FfiSessionIoBox, inputs: &tokio::sync::mpsc::Sender<Input>, done: &AtomicBool) {
    while !done.load(Ordering::SeqCst) {
        match io.recv(INPUT_POLL.as_millis() as u64) {
            FfiRecv::Input(data) => {
                let Ok(input) = codec::decode_input(&data) else {
                    continue;
                };
                if inputs.blocking_send(input).is_err() {
                    return;
                }
            }
            FfiRecv::Timeout => {}
            FfiRecv::Closed => return,
        }
    }
}

fn wrong_kind(method: &str) -> PluginError {
    PluginError::new(
        Origin::Host,
        ErrorKind::InvalidInput,
        format!("method {method} is not offered by this kind of plugin"),
    )
}

async fn dispatch(instance: &PluginInstance, method: &str, payload: &str) -> PluginResult<String> {
    use codec::{from_json as parse, to_json as out};
    match (instance, method) {
        (any, method::HEALTH) => out(&any.plugin().health().await?),
        (PluginInstance::MfaProvider(p), method::MFA_ENROLL) => {
            out(&p.enroll(&parse("subject", payload)?).await?)
        }
        (PluginInstance::MfaProvider(p), method::MFA_VERIFY) => {
            let a: codec::VerifyArgs = parse("verify arguments", payload)?;
            out(&p.verify(&a.who, &a.secret, &a.response, a.now).await?)
        }
        (PluginInstance::CredentialSource(p), method::CREDENTIAL_LIST) => {
            out(&p.list(&parse("flow subject", payload)?).await?)
        }
        (PluginInstance::CredentialSource(p), method::CREDENTIAL_CHECK_OUT) => {
            out(&p.check_out(parse("check-out request", payload)?).await?)
        }
        (PluginInstance::CredentialSource(p), method::CREDENTIAL_END_SESSION) => out(&p
            .end_session(parse("end-session request", payload)?)
            .await?),
        (PluginInstance::CredentialSource(p), method::CREDENTIAL_AUTHENTICATE) => {
            out(&p.authenticate(&parse("flow subject", payload)?).await?)
        }
        (PluginInstance::Recorder(p), method::RECORDER_STORE) => {
            out(&p.store(parse("sealed recording", payload)?).await?)
        }
        (PluginInstance::Recorder(p), method::RECORDER_READ) => {
            let a: codec::ReadArgs = parse("read arguments", payload)?;
            out(&codec::Bytes(
                p.read(&a.rec, &a.file, a.offset, a.max_len).await?,
            ))
        }
        (PluginInstance::AccountProvisioner(p), method::PROVISIONER_CREATE) => {
            out(&p.create(parse("JIT request", payload)?).await?)
        }
        (PluginInstance::AccountProvisioner(p), method::PROVISIONER_REMOVE) => {
            out(&p.remove(&parse("JIT account", payload)?).await?)
        }
        (PluginInstance::AccountProvisioner(p), method::PROVISIONER_OWNED) => {
            out(&p.owned().await?)
        }
        (_, other) => Err(wrong_kind(other)),
    }
}

/// Turns a plugin crate into a shared library the gateway can load.
///
/// ```ignore
/// openpsm_plugin_api::export_plugin!(info: my_info, build: my_build);
/// // fn my_info() -> PluginInfo;  fn my_build(PluginSettings) -> PluginResult<PluginInstance>
/// ```
/// The crate needs `crate-type = ["cdylib"]` and `abi_stable` as a direct dependency.
#[macro_export]
macro_rules! export_plugin {
    (info: $info:path, build: $build:path $(,)?) => {
        extern "C" fn __openpsm_describe() -> ::abi_stable::std_types::RResult<
            ::abi_stable::std_types::RString,
            ::abi_stable::std_types::RString,
        > {
            $crate::ffi::guest::describe($info)
        }

        extern "C" fn __openpsm_instantiate(
            args: ::abi_stable::std_types::RStr<'_>,
            sink: $crate::ffi::LogSink,
        ) -> ::abi_stable::std_types::RResult<
            $crate::ffi::FfiPluginBox,
            ::abi_stable::std_types::RString,
        > {
            $crate::ffi::guest::instantiate(args, sink, $info, $build)
        }

        #[::abi_stable::export_root_module]
        pub fn __openpsm_root_module() -> $crate::ffi::PluginRoot_Ref {
            use ::abi_stable::prefix_type::PrefixTypeTrait as _;
            $crate::ffi::PluginRoot {
                api_version: ::abi_stable::std_types::RStr::from_str($crate::API_VERSION),
                describe: __openpsm_describe,
                instantiate: __openpsm_instantiate,
            }
            .leak_into_prefix()
        }
    };
}
