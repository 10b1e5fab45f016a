//! Log lines from a library's own copy of `tracing` to the host's subscriber.

use std::fmt::Write as _;
use std::sync::OnceLock;

use abi_stable::{StableAbi, std_types::RStr};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

/// Handed to `instantiate`: where the library sends its log lines, and the most verbose level the
/// host wants (1 = error ... 5 = trace, 0 = none) so the library does not format what is dropped.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct LogSink {
    /// `(level, plugin id, target, message)`.
    pub emit: extern "C" fn(u8, RStr<'_>, RStr<'_>, RStr<'_>),
    pub max_level: u8,
}

pub(crate) fn level_number(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => 1,
        tracing::Level::WARN => 2,
        tracing::Level::INFO => 3,
        tracing::Level::DEBUG => 4,
        tracing::Level::TRACE => 5,
    }
}

/// The host's end: re-emits a library's line through the host's `tracing`, with the plugin id.
pub extern "C" fn host_emit(level: u8, plugin: RStr<'_>, target: RStr<'_>, message: RStr<'_>) {
    // A panic must not unwind into the library's frame.
    let _ = std::panic::catch_unwind(|| {
        let (plugin, target, message) = (plugin.as_str(), target.as_str(), message.as_str());
        match level {
            1 => tracing::error!(plugin, plugin_target = target, "{message}"),
            2 => tracing::warn!(plugin, plugin_target = target, "{message}"),
            3 => tracing::info!(plugin, plugin_target = target, "{message}"),
            4 => tracing::debug!(plugin, plugin_target = target, "{message}"),
            _ => tracing::trace!(plugin, plugin_target = target, "{message}"),
        }
    });
}

/// The most verbose level the host's subscriber currently records, as a number for [`LogSink`].
pub fn host_max_level() -> u8 {
    match tracing::level_filters::LevelFilter::current().into_level() {
        Some(level) => level_number(&level),
        None => 0,
    }
}

struct Forward {
    sink: LogSink,
    plugin: String,
}

impl<S: tracing::Subscriber> Layer<S> for Forward {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        level_number(metadata.level()) <= self.sink.max_level
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        let meta = event.metadata();
        (self.sink.emit)(
            level_number(meta.level()),
            RStr::from_str(&self.plugin),
            RStr::from_str(meta.target()),
            RStr::from_str(&visitor.finish()),
        );
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Fields {
    fn finish(mut self) -> String {
        if !self.rest.is_empty() {
            if !self.message.is_empty() {
                self.message.push(' ');
            }
            self.message.push_str(self.rest.trim_start());
        }
        self.message
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }
}

static INSTALLED: OnceLock<LogSink> = OnceLock::new();

/// Installs the forwarding subscriber in the library (once; later calls keep the first sink) and a
/// panic hook that reports panics through it instead of the library's own stderr.
pub(crate) fn install_in_guest(sink: LogSink, plugin: &str) {
    if INSTALLED.set(sink).is_err() {
        return;
    }
    use tracing_subscriber::layer::SubscriberExt as _;
    let subscriber = tracing_subscriber::registry().with(Forward {
        sink,
        plugin: plugin.to_owned(),
    });
    let _ = tracing::subscriber::set_global_default(subscriber);
    let plugin = plugin.to_owned();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = format!("plugin panicked{location}: {}", panic_text(info.payload()));
        (sink.emit)(
            1,
            RStr::from_str(&plugin),
            RStr::from_str("panic"),
            RStr::from_str(&message),
        );
    }));
}

/// The text of a panic payload.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}
