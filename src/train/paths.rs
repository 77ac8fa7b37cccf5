//! Output paths checked before training, so a typo or an unwritable
//! folder fails at once, not after the run, and so no output silently
//! destroys data: an output that is one of the run's inputs (or another
//! output) is refused, and an existing file is only replaced by a file of
//! its own kind unless the caller says to overwrite anyway.

use std::io::Read as _;
use std::path::{Path, PathBuf};

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

/// What an output file holds; an existing non-empty file is only
/// replaced by one of the same kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// A checkpoint: a safetensors file whose metadata has the config key.
    Checkpoint,
    /// JSON lines: a file whose first line is a JSON object.
    JsonLines,
    /// An SVG image.
    Svg,
    /// A JSON object (a baseline file).
    JsonObject,
}

impl OutputKind {
    /// The kind in words, for error messages.
    fn describe(self) -> &'static str {
        match self {
            OutputKind::Checkpoint => "a manytask checkpoint",
            OutputKind::JsonLines => "a JSON-lines file",
            OutputKind::Svg => "an SVG file",
            OutputKind::JsonObject => "a JSON object file",
        }
    }
}

/// Whether an existing file of another kind may be replaced (`--force`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// Only a file of the kind being written (or an empty one).
    SameKindOnly,
    /// Any file (`--force`); outputs equal to the data or config read
    /// are still refused.
    Any,
}

/// How strongly an input is protected from being an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// Data, config or baseline read: never an output.
    Source,
    /// A checkpoint read whole before training (`--init`, `--resume`):
    /// replaced only with `Overwrite::Any`.
    Checkpoint,
}

/// A file the run reads: the path and the flag or key that named it.
#[derive(Clone, Debug)]
pub struct RunInput {
    /// The file.
    pub path: PathBuf,
    /// The flag or config key that named it (for errors).
    pub role: String,
    /// How strongly it is protected.
    pub kind: InputKind,
}

/// A file the run writes: the path, the flag or key that named it, and
/// what it will hold.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// The file.
    pub path: PathBuf,
    /// The flag or config key that named it (for errors).
    pub role: String,
    /// What it will hold.
    pub kind: OutputKind,
}

/// Checks every output of a run before its first step: each is writable
/// (`check_output`), none is the same file as an input or as another
/// output, and an existing non-empty file of another kind is refused
/// unless `overwrite` is `Overwrite::Any`.
pub fn check_run_files(
    inputs: &[RunInput],
    outputs: &[RunOutput],
    overwrite: Overwrite,
) -> Result<()> {
    let clash = |path: &Path, detail: String| Error::Data {
        file: path.display().to_string(),
        detail,
    };
    let input_ids: Vec<Option<FileId>> = inputs.iter().map(|i| file_id(&i.path)).collect();
    let mut output_ids: Vec<(Option<FileId>, &RunOutput)> = Vec::new();
    for out in outputs {
        check_output(&out.path, &out.role)?;
        let id = file_id(&out.path);
        for (input, input_id) in inputs.iter().zip(&input_ids) {
            let same = id.is_some() && id == *input_id;
            let allowed = input.kind == InputKind::Checkpoint && overwrite == Overwrite::Any;
            if same && !allowed {
                let hint = if input.kind == InputKind::Checkpoint {
                    " (pass --force to replace it)"
                } else {
                    ""
                };
                return Err(clash(
                    &out.path,
                    format!(
                        "{} would overwrite the {} input {} (the same file){hint}",
                        out.role,
                        input.role,
                        input.path.display()
                    ),
                ));
            }
        }
        if let Some((_, other)) = output_ids
            .iter()
            .find(|(other_id, _)| id.is_some() && *other_id == id)
        {
            return Err(clash(
                &out.path,
                format!(
                    "{} and {} are the same file ({} and {}): one would overwrite the other",
                    other.role,
                    out.role,
                    other.path.display(),
                    out.path.display()
                ),
            ));
        }
        output_ids.push((id, out));
        if overwrite == Overwrite::SameKindOnly {
            check_kind(out)?;
        }
    }
    Ok(())
}

/// What makes two paths the same file: the device and inode of an
/// existing file (so hard links and other spellings match), else the
/// canonical folder joined with the name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum FileId {
    #[cfg(unix)]
    Inode(u64, u64),
    Path(PathBuf),
}

fn file_id(path: &Path) -> Option<FileId> {
    if let Ok(meta) = std::fs::metadata(path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            return Some(FileId::Inode(meta.dev(), meta.ino()));
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            return std::fs::canonicalize(path).ok().map(FileId::Path);
        }
    }
    let name = path.file_name()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::canonicalize(dir)
        .ok()
        .map(|d| FileId::Path(d.join(name)))
}

/// Bytes read to recognise a JSON-lines or SVG file.
const SNIFF_BYTES: u64 = 1 << 20;
/// Largest baseline file read to check it is a JSON object.
const JSON_OBJECT_BYTES: u64 = 64 << 20;

/// Refuses an existing non-empty regular file at `out.path` that is not
/// of `out.kind`. Missing, empty and non-regular files (devices such as
/// `/dev/null`) pass: replacing them loses nothing.
fn check_kind(out: &RunOutput) -> Result<()> {
    let path = &out.path;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if !meta.is_file() || meta.len() == 0 {
        return Ok(());
    }
    let is_kind = match out.kind {
        OutputKind::Checkpoint => is_checkpoint(path),
        OutputKind::JsonLines => is_json_lines(path),
        OutputKind::Svg => is_svg(path),
        OutputKind::JsonObject => is_json_object(path),
    };
    if is_kind {
        return Ok(());
    }
    Err(Error::Data {
        file: path.display().to_string(),
        detail: format!(
            "{}: the existing file is not {} and would be overwritten: \
             choose another path, or pass --force to replace it",
            out.role,
            out.kind.describe()
        ),
    })
}

/// Up to `max` bytes from the start of `path`.
fn head(path: &Path, max: u64) -> Option<Vec<u8>> {
    let (file, _) = crate::util::fs::open_regular(path).ok()?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

fn is_checkpoint(path: &Path) -> bool {
    let Ok(header) = crate::util::fs::read_safetensors_header(path) else {
        return false;
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&header) else {
        return false;
    };
    value
        .get("__metadata__")
        .and_then(|m| m.get(crate::checkpoint::CONFIG_KEY))
        .is_some_and(|c| c.is_string())
}

fn is_json_lines(path: &Path) -> bool {
    let Some(bytes) = head(path, SNIFF_BYTES) else {
        return false;
    };
    let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes[..end]).is_ok_and(|v| v.is_object())
}

fn is_svg(path: &Path) -> bool {
    let Some(bytes) = head(path, SNIFF_BYTES) else {
        return false;
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    text.starts_with("<svg") || (text.starts_with("<?xml") && text.contains("<svg"))
}

fn is_json_object(path: &Path) -> bool {
    crate::util::fs::read_regular(path, JSON_OBJECT_BYTES)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.is_object())
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
