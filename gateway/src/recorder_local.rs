//! Built-in `Recorder` "local-files": keeps sealed recordings as files below a directory.
//!
//! Layout: `<dir>/<session uuid>/<file name>`. File names are plain names (no separators, no
//! `..`); reads only reach files the recording lists.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openpsm_plugin_api::recorder::MAX_READ_CHUNK;
use openpsm_plugin_api::{
    BuiltinPlugin, ErrorKind, Origin, Plugin, PluginError, PluginInfo, PluginInstance, PluginKind,
    PluginResult, PluginSettings, Recorder, SealedRecording, StoredRecording, async_trait,
};
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

pub const ID: &str = "local-files";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Relative to the data directory.
    #[serde(default = "default_dir")]
    dir: PathBuf,
}

fn default_dir() -> PathBuf {
    PathBuf::from("recordings")
}

pub struct LocalFiles {
    dir: PathBuf,
}

fn info() -> PluginInfo {
    PluginInfo::new(
        PluginKind::Recorder,
        ID,
        env!("CARGO_PKG_VERSION"),
        "sealed recordings as files on the gateway",
    )
}

fn build(settings: PluginSettings) -> PluginResult<PluginInstance> {
    let s: Settings = settings.parse()?;
    Ok(PluginInstance::Recorder(Arc::new(LocalFiles::new(
        settings.host.data_dir.join(s.dir),
    ))))
}

inventory::submit! { BuiltinPlugin { info, build } }

fn io_error(what: &str, e: &std::io::Error) -> PluginError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        _ => ErrorKind::Internal,
    };
    PluginError::new(Origin::Plugin, kind, format!("{what}: {e}"))
}

fn plain_name(name: &str) -> PluginResult<&str> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255;
    if ok {
        Ok(name)
    } else {
        Err(PluginError::invalid_input(format!(
            "{name:?} is not a plain file name"
        )))
    }
}

impl LocalFiles {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn session_dir(&self, session: &uuid::Uuid) -> PathBuf {
        self.dir.join(session.to_string())
    }
}

#[async_trait]
impl Plugin for LocalFiles {
    fn info(&self) -> PluginInfo {
        info()
    }

    async fn health(&self) -> PluginResult<()> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| io_error(&format!("recording directory {}", self.dir.display()), &e))
    }
}

#[async_trait]
impl Recorder for LocalFiles {
    async fn store(&self, rec: SealedRecording) -> PluginResult<StoredRecording> {
        let target = self.session_dir(&rec.session);
        tokio::fs::create_dir_all(&target)
            .await
            .map_err(|e| io_error("creating the recording directory", &e))?;
        for file in &rec.files {
            let name = plain_name(&file.name)?;
            let from = rec.dir.join(name);
            let to = target.join(name);
            if same_file(&from, &to).await {
                continue;
            }
            let copied = tokio::fs::copy(&from, &to)
                .await
                .map_err(|e| io_error(&format!("storing {name}"), &e))?;
            if copied != file.bytes {
                return Err(PluginError::internal(format!(
                    "storing {name}: copied {copied} bytes, the sealed file has {}",
                    file.bytes
                )));
            }
        }
        Ok(StoredRecording {
            session: rec.session,
            location: target.display().to_string(),
            files: rec.files,
        })
    }

    async fn read(
        &self,
        rec: &StoredRecording,
        file: &str,
        offset: u64,
        max_len: u32,
    ) -> PluginResult<Vec<u8>> {
        let name = plain_name(file)?;
        if !rec.files.iter().any(|f| f.name == name) {
            return Err(PluginError::not_found(format!(
                "the recording has no file {name:?}"
            )));
        }
        let path = self.session_dir(&rec.session).join(name);
        let mut handle = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_error(&format!("opening {name}"), &e))?;
        handle
            .seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| io_error(&format!("seeking in {name}"), &e))?;
        let want = max_len.min(MAX_READ_CHUNK) as usize;
        let mut buf = Vec::with_capacity(want.min(64 * 1024));
        handle
            .take(want as u64)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| io_error(&format!("reading {name}"), &e))?;
        Ok(buf)
    }
}

async fn same_file(a: &Path, b: &Path) -> bool {
    match (
        tokio::fs::canonicalize(a).await,
        tokio::fs::canonicalize(b).await,
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openpsm_plugin_api::conformance;

    #[tokio::test]
    async fn passes_the_recorder_conformance_suite() {
        let store = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let recorder = LocalFiles::new(store.path().join("recordings"));
        let report = conformance::recorder::check(&recorder, scratch.path()).await;
        assert!(report.passed(), "{report}");
        assert!(report.checks > 10);
    }
}
