//! The `Recorder` suite.

use std::path::Path;

use uuid::Uuid;

use super::{Report, common};
use crate::error::ErrorKind;
use crate::info::PluginKind;
use crate::recorder::{MAX_READ_CHUNK, Recorder, RecordingFile, SealedRecording};

/// `scratch` is an empty directory the suite may write sealed files into.
pub async fn check(recorder: &dyn Recorder, scratch: &Path) -> Report {
    let mut r = Report::default();
    common(&mut r, recorder, PluginKind::Recorder).await;
    let session = Uuid::new_v4();
    let dir = scratch.join(session.to_string());
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let small = b"{\"version\": 2}\n".to_vec();
    let write = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("session.cast"), &small))
        .and_then(|()| std::fs::write(dir.join("session.guac"), &body));
    if let Err(e) = write {
        r.fail(format!("the suite can write its scratch files: {e}"));
        return r;
    }
    let file = |name: &str, data: &[u8]| RecordingFile {
        name: name.into(),
        sha256: String::new(),
        bytes: data.len() as u64,
    };
    let sealed = SealedRecording {
        session,
        dir: dir.clone(),
        files: vec![file("session.cast", &small), file("session.guac", &body)],
    };
    let stored = match recorder.store(sealed).await {
        Ok(s) => s,
        Err(e) => {
            r.fail(format!("store() succeeds: {e}"));
            return r;
        }
    };
    r.check(
        stored.session == session && stored.files.len() == 2,
        "store() returns both files",
    );
    let mut back = Vec::new();
    let mut chunks = 0;
    loop {
        match recorder
            .read(&stored, "session.guac", back.len() as u64, 65_536)
            .await
        {
            Ok(chunk) if chunk.is_empty() => break,
            Ok(chunk) => {
                chunks += 1;
                back.extend_from_slice(&chunk);
                if chunk.len() > 65_536 || chunks > 100 {
                    r.fail("read() never answers more than max_len");
                    break;
                }
            }
            Err(e) => {
                r.fail(format!("read() succeeds: {e}"));
                break;
            }
        }
    }
    r.check(
        back == body,
        "reading back in chunks yields the stored bytes",
    );
    let past = recorder.read(&stored, "session.cast", 1 << 40, 10).await;
    r.check(
        matches!(&past, Ok(c) if c.is_empty()),
        "reading past the end yields nothing",
    );
    let big = recorder.read(&stored, "session.guac", 0, u32::MAX).await;
    r.check(
        match &big {
            Ok(c) => c.len() <= MAX_READ_CHUNK as usize,
            Err(e) => e.kind == ErrorKind::InvalidInput,
        },
        "a read larger than MAX_READ_CHUNK is clamped or refused",
    );
    for name in ["missing.cast", "../session.cast", "/etc/passwd", ""] {
        let got = recorder.read(&stored, name, 0, 10).await;
        r.check(got.is_err(), format!("reading {name:?} is an error"));
    }
    r
}
