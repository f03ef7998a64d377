//! Whole-or-nothing report files: CI reads a report as soon as the job ends, so a crash or
//! a full disk must leave either the previous file or the complete new one, never half.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
///
/// The temporary file lives next to the target because a rename is only atomic within
/// one filesystem. On any error the temporary file is removed and the target is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("report path {} has no file name", path.display()),
        )
    })?;
    let (tmp, mut file) = create_temp(&dir, &name.to_string_lossy())?;
    // Callers name the report path; these messages add which step failed.
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| context(e, "write", &tmp))
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| context(e, "rename", &tmp)));
    if let Err(e) = written {
        // Best effort: the original error is the one worth reporting.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&dir);
    Ok(())
}

fn context(e: io::Error, step: &str, tmp: &Path) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{step} temporary file {}: {e}", tmp.display()),
    )
}

/// `report.json` has parent `""`, which the filesystem calls `.`.
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates a fresh temporary file; `create_new` so two writers never share one.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut last = None;
    for attempt in 0..100u32 {
        let tmp = dir.join(format!(".{name}.{pid}.{attempt}.tmp"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("create temporary file in {}: {e}", dir.display()),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no temporary file name left")))
}

/// Makes the rename itself durable. Best effort: some filesystems refuse to sync a
/// directory, and the report is already complete either way.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_existing_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["report.json"], "stray files: {names:?}");
    }

    #[test]
    fn failed_rename_leaves_target_untouched_and_says_which_step() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the report should go: the rename fails after the write.
        let path = dir.path().join("out");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), "x").unwrap();
        let err = write_atomic(&path, b"new").unwrap_err();
        assert!(
            err.to_string().starts_with("rename temporary file"),
            "{err}"
        );
        assert!(path.join("keep").exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
