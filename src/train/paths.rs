//! Output paths checked before training, so a typo or an unwritable
//! folder fails at once, not after the run.

use std::path::Path;

use crate::error::{Error, Result};

/// Checks that `path` names a file (not a folder) in an existing folder
/// this process can create files in; `what` (the flag or key that gave
/// it) names it in the error. Writes nothing that stays: a probe file
/// beside the target is created and removed.
pub fn check_output(path: &Path, what: &str) -> Result<()> {
    let fail = |detail: String| Error::Data {
        file: path.display().to_string(),
        detail: format!("{what}: {detail}"),
    };
    let Some(name) = path.file_name() else {
        return Err(fail("not a file path".into()));
    };
    if path.is_dir() {
        return Err(fail("is a folder, not a file".into()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(fail(format!(
            "its folder {} does not exist (or is not a folder)",
            dir.display()
        )));
    }
    // Saves write a temporary file beside the target, then rename it:
    // the folder must take new files.
    let probe = dir.join(format!(
        ".{}.probe-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(fail(format!(
            "cannot create files in {}: {e}",
            dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_folders_folders_and_file_parents_are_refused() {
        let dir = std::env::temp_dir().join(format!("manytask-paths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.txt");
        std::fs::write(&file, "x").unwrap();
        assert!(check_output(&dir.join("ok.safetensors"), "--save").is_ok());
        assert!(
            check_output(&file, "--save").is_ok(),
            "an existing file is replaced"
        );
        for (bad, want) in [
            (dir.join("missing/x.json"), "does not exist"),
            (file.join("x.json"), "does not exist"),
            (dir.clone(), "is a folder"),
        ] {
            let e = check_output(&bad, "--log").unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("--log"), "{e}");
        }
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "a probe was left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
