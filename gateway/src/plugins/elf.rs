//! Checks a shared library's file before `dlopen` sees it.
//!
//! A truncated or half-written library can kill the process with SIGBUS inside `dlopen` (the
//! loader maps segments that reach past the end of the file). Every segment and the section table
//! must lie inside the file, and the file must be an ELF shared object for this machine.

use std::path::Path;

use object::read::elf::FileHeader as _;
use object::{Object as _, ObjectKind, ObjectSegment as _};

/// Why a file is not a loadable library.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("cannot read the file: {0}")]
    Read(String),
    #[error("not an ELF shared library ({0})")]
    NotElf(String),
    #[error("is an ELF file but not a shared library ({0:?})")]
    NotShared(String),
    #[error("built for {found}, this gateway runs on {expected}")]
    WrongMachine { found: String, expected: String },
    #[error("truncated or damaged: {0}")]
    Truncated(String),
}

/// Reads and checks the file at `path`.
pub fn check_file(path: &Path) -> Result<(), ElfError> {
    let data = std::fs::read(path).map_err(|e| ElfError::Read(e.to_string()))?;
    check_bytes(&data)
}

/// Checks the bytes of a library.
pub fn check_bytes(data: &[u8]) -> Result<(), ElfError> {
    if data.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::NotElf("no ELF magic".into()));
    }
    let file = object::File::parse(data).map_err(|e| ElfError::Truncated(e.to_string()))?;
    if file.kind() != ObjectKind::Dynamic {
        return Err(ElfError::NotShared(format!("{:?}", file.kind())));
    }
    let expected = object::Architecture::X86_64;
    let found = file.architecture();
    if cfg!(target_arch = "x86_64") && found != expected {
        return Err(ElfError::WrongMachine {
            found: format!("{found:?}"),
            expected: format!("{expected:?}"),
        });
    }
    let len = data.len() as u64;
    for segment in file.segments() {
        let (offset, size) = segment.file_range();
        if offset.checked_add(size).is_none_or(|end| end > len) {
            return Err(ElfError::Truncated(format!(
                "a segment ends at byte {}, the file has {len}",
                offset.saturating_add(size)
            )));
        }
    }
    // The section header table sits at the very end of a linked library: its absence is the
    // surest sign of a half-written file.
    let header = object::elf::FileHeader64::<object::Endianness>::parse(data)
        .map_err(|e| ElfError::Truncated(e.to_string()))?;
    let endian = header
        .endian()
        .map_err(|e| ElfError::Truncated(e.to_string()))?;
    header
        .section_headers(endian, data)
        .map_err(|e| ElfError::Truncated(format!("section table: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn this_binary() -> &'static [u8] {
        // The test binary itself is an ELF file (a PIE executable is `Dynamic` too).
        static DATA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        DATA.get_or_init(|| {
            std::env::current_exe()
                .and_then(std::fs::read)
                .unwrap_or_default()
        })
    }

    #[test]
    fn refuses_non_elf() {
        assert!(matches!(
            check_bytes(b"#!/bin/sh\n"),
            Err(ElfError::NotElf(_))
        ));
        assert!(matches!(check_bytes(b""), Err(ElfError::NotElf(_))));
    }

    #[test]
    fn accepts_a_whole_elf_and_refuses_its_halves() {
        let data = this_binary();
        assert!(
            check_bytes(data).is_ok() || matches!(check_bytes(data), Err(ElfError::NotShared(_)))
        );
        let half = data.get(..data.len() / 2).unwrap_or_default();
        assert!(check_bytes(half).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_truncation_is_refused(cut in 0.0f64..0.999) {
            let data = this_binary();
            let at = (data.len() as f64 * cut) as usize;
            prop_assert!(check_bytes(data.get(..at).unwrap_or_default()).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = check_bytes(&bytes);
            if bytes.len() >= 4 { bytes[..4].copy_from_slice(b"\x7fELF"); }
            let _ = check_bytes(&bytes);
        }
    }
}
