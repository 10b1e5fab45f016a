//! The seed's typescript: `NAME` (raw output after a `Script started on ...` line) and
//! `NAME.timing` (`<seconds since the previous chunk> <bytes>` per chunk), as util-linux `script`
//! writes them and `scriptreplay --timing NAME.timing NAME` plays them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use openpsm_plugin_api::RecordingFile;
use tokio::io::AsyncWriteExt as _;

use super::recording::{RecordingError, seal_existing};

pub struct Typescript {
    data_path: PathBuf,
    timing_path: PathBuf,
    data: tokio::fs::File,
    timing: tokio::fs::File,
    last: Instant,
}

fn err(path: &Path) -> impl Fn(std::io::Error) -> RecordingError + '_ {
    move |e| RecordingError {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

async fn create_new(path: &Path) -> Result<tokio::fs::File, RecordingError> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(err(path))
}

impl Typescript {
    /// Creates `dir/NAME` and `dir/NAME.timing`.
    pub async fn create(
        dir: &Path,
        name: &str,
        started: &str,
        session: &str,
    ) -> Result<Self, RecordingError> {
        tokio::fs::create_dir_all(dir).await.map_err(err(dir))?;
        let data_path = dir.join(name);
        let timing_path = dir.join(format!("{name}.timing"));
        let mut data = create_new(&data_path).await?;
        let timing = create_new(&timing_path).await?;
        let header =
            format!("Script started on {started} [COMMAND=\"openpsm session {session}\"]\n");
        data.write_all(header.as_bytes())
            .await
            .map_err(err(&data_path))?;
        Ok(Self {
            data_path,
            timing_path,
            data,
            timing,
            last: Instant::now(),
        })
    }

    pub async fn output(&mut self, bytes: &[u8]) -> Result<(), RecordingError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let delay = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.data
            .write_all(bytes)
            .await
            .map_err(err(&self.data_path))?;
        let line = format!("{delay:.6} {}\n", bytes.len());
        self.timing
            .write_all(line.as_bytes())
            .await
            .map_err(err(&self.timing_path))?;
        Ok(())
    }

    pub async fn seal(mut self, ended: &str) -> Result<Vec<RecordingFile>, RecordingError> {
        let footer = format!("\nScript done on {ended} [COMMAND_EXIT_CODE=\"0\"]\n");
        self.data
            .write_all(footer.as_bytes())
            .await
            .map_err(err(&self.data_path))?;
        self.data.sync_all().await.map_err(err(&self.data_path))?;
        self.timing
            .sync_all()
            .await
            .map_err(err(&self.timing_path))?;
        Ok(vec![
            seal_existing(&self.data_path).await?,
            seal_existing(&self.timing_path).await?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scriptreplay_plays_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut ts = Typescript::create(
            dir.path(),
            "session.typescript",
            "2026-12-04 10:00:00+00:00",
            "s1",
        )
        .await
        .unwrap();
        ts.output(b"hello ").await.unwrap();
        ts.output("wörld\r\n".as_bytes()).await.unwrap();
        let files = ts.seal("2026-12-04 10:00:01+00:00").await.unwrap();
        assert_eq!(files.len(), 2);
        let timing = std::fs::read_to_string(dir.path().join("session.typescript.timing")).unwrap();
        let counts: Vec<usize> = timing
            .lines()
            .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(counts, [6, 8]);
        if std::path::Path::new("/usr/bin/scriptreplay").exists() {
            let out = std::process::Command::new("scriptreplay")
                .args([
                    "--timing",
                    "session.typescript.timing",
                    "session.typescript",
                    "--divisor",
                    "100",
                ])
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).starts_with("hello wörld\r\n"));
        }
    }
}
