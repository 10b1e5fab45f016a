//! asciicast v2 recordings of terminal sessions: a JSON header line, then `[seconds, "o", text]`
//! for output and `[seconds, "r", "COLSxROWS"]` for resizes. Sealing hashes the file (SHA-256).

use std::path::{Path, PathBuf};
use std::time::Instant;

use openpsm_plugin_api::RecordingFile;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

#[derive(Debug, thiserror::Error)]
#[error("recording {path}: {reason}")]
pub struct RecordingError {
    pub path: String,
    pub reason: String,
}

/// A recording error about `path`.
pub fn error(path: &Path, e: &std::io::Error) -> RecordingError {
    RecordingError {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A new recording file (its directory made if needed); never overwrites one.
pub async fn create_file(path: &Path) -> Result<tokio::fs::File, RecordingError> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| error(path, &e))?;
    }
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(|e| error(path, &e))
}

pub struct Asciicast {
    path: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
    started: Instant,
    /// Bytes of a UTF-8 character split across two frames.
    carry: Vec<u8>,
}

impl Asciicast {
    pub async fn create(
        path: &Path,
        cols: u16,
        rows: u16,
        timestamp: i64,
    ) -> Result<Self, RecordingError> {
        let file = create_file(path).await?;
        let mut cast = Self {
            path: path.to_owned(),
            file: tokio::io::BufWriter::new(file),
            started: Instant::now(),
            carry: Vec::new(),
        };
        let header = serde_json::json!({"version": 2, "width": cols, "height": rows, "timestamp": timestamp, "env": {"TERM": "xterm-256color"}});
        cast.line(&header.to_string()).await?;
        Ok(cast)
    }

    async fn line(&mut self, text: &str) -> Result<(), RecordingError> {
        let path = self.path.display().to_string();
        let err = |e: std::io::Error| RecordingError {
            path: path.clone(),
            reason: e.to_string(),
        };
        self.file.write_all(text.as_bytes()).await.map_err(err)?;
        self.file.write_all(b"\n").await.map_err(err)?;
        // Flushed per event: a crash loses at most the event being written.
        self.file.flush().await.map_err(err)
    }

    fn at(&self) -> f64 {
        (self.started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1_000_000.0
    }

    pub async fn output(&mut self, bytes: &[u8]) -> Result<(), RecordingError> {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&data) {
            Ok(_) => data.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => data.len(),
        };
        self.carry = data.split_off(valid);
        if data.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&data);
        let event = serde_json::json!([self.at(), "o", text]);
        self.line(&event.to_string()).await
    }

    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result<(), RecordingError> {
        let event = serde_json::json!([self.at(), "r", format!("{cols}x{rows}")]);
        self.line(&event.to_string()).await
    }

    /// Finishes the file and hashes it.
    pub async fn seal(mut self) -> Result<RecordingFile, RecordingError> {
        if !self.carry.is_empty() {
            let rest = std::mem::take(&mut self.carry);
            let event = serde_json::json!([self.at(), "o", String::from_utf8_lossy(&rest)]);
            self.line(&event.to_string()).await?;
        }
        let path = self.path.display().to_string();
        let err = |e: std::io::Error| RecordingError {
            path: path.clone(),
            reason: e.to_string(),
        };
        self.file.flush().await.map_err(err)?;
        self.file.get_ref().sync_all().await.map_err(err)?;
        seal_existing(&self.path).await
    }
}

/// Seals a file already on disk: hashes it in chunks (a recording can be far larger than memory).
pub async fn seal_existing(path: &Path) -> Result<RecordingFile, RecordingError> {
    use tokio::io::AsyncReadExt as _;
    let err = |e: std::io::Error| RecordingError {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut file = tokio::fs::File::open(path).await.map_err(err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(err)?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        bytes += n as u64;
    }
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(RecordingFile {
        name,
        sha256,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn split_utf8_and_sealing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s/session.cast");
        let mut cast = Asciicast::create(&path, 80, 24, 1_700_000_000)
            .await
            .unwrap();
        let text = "grüße ✓\r\n".as_bytes();
        cast.output(&text[..3]).await.unwrap();
        cast.output(&text[3..]).await.unwrap();
        cast.resize(100, 30).await.unwrap();
        let sealed = cast.seal().await.unwrap();
        let content = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = content
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["version"], 2);
        let output: String = lines
            .iter()
            .filter(|l| l[1] == "o")
            .map(|l| l[2].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(output, "grüße ✓\r\n");
        assert!(lines.iter().any(|l| l[1] == "r" && l[2] == "100x30"));
        assert_eq!(sealed.bytes, content.len() as u64);
        assert_eq!(sealed.sha256.len(), 64);
        assert!(
            Asciicast::create(&path, 80, 24, 0).await.is_err(),
            "never overwrites a recording"
        );
    }
}
