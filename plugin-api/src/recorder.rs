//! `Recorder`: where sealed recordings are stored and read back. The host writes the formats
//! (asciicast, typescript, .guac) and seals (hashes) each file; a recorder moves sealed files to
//! their store and reads them back in bounded chunks.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::PluginResult;
use crate::plugin::Plugin;

/// One sealed file of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingFile {
    /// A plain file name (`session.cast`); no directories.
    pub name: String,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    pub bytes: u64,
}

/// A recording the host has finished and sealed, in local files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRecording {
    pub session: Uuid,
    /// The directory holding `files` on the gateway.
    pub dir: PathBuf,
    pub files: Vec<RecordingFile>,
}

/// Where a recorder put a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecording {
    pub session: Uuid,
    /// The recorder's own address for it (a path, a URL, an object key).
    pub location: String,
    pub files: Vec<RecordingFile>,
}

/// The largest chunk `read` may be asked for.
pub const MAX_READ_CHUNK: u32 = 1 << 20;

#[async_trait]
pub trait Recorder: Plugin {
    async fn store(&self, rec: SealedRecording) -> PluginResult<StoredRecording>;

    /// Reads at most `max_len` bytes (at most `MAX_READ_CHUNK`) of `file` from `offset`; an empty
    /// answer means the end of the file.
    async fn read(
        &self,
        rec: &StoredRecording,
        file: &str,
        offset: u64,
        max_len: u32,
    ) -> PluginResult<Vec<u8>>;
}
