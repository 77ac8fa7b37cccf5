//! File helpers shared by every reader and writer:
//! - atomic writes: checkpoints and baseline files must never be left
//!   half written;
//! - bounded reads: a reader opens only regular files and never reads
//!   more than the file's size, so `/dev/zero`, a FIFO or a directory
//!   given as data, config or checkpoint is a clear error, not a read that
//!   runs forever while memory grows.

use std::fs::File;
use std::io::{Error, ErrorKind, Read, Write};
use std::path::Path;

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames
/// it over `path`: the old file stays whole until the new one is complete,
/// and a failed write removes the temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "not a file path"))?
        .to_string_lossy()
        .to_string();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// What a path is when it is not a regular file, for error messages.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading if it is a regular file (after following
/// symbolic links) and returns it with its size in bytes. Anything else
/// (a directory, a FIFO, a device such as `/dev/zero`) is an
/// `InvalidInput` error saying what it is. The type is checked on the
/// opened handle, and a FIFO is never opened (opening one would block
/// until a writer appears).
pub fn open_regular(path: &Path) -> std::io::Result<(File, u64)> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let file = File::open(path)?;
    // The path may have been swapped between the two looks.
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    Ok((file, meta.len()))
}

fn not_regular(meta: &std::fs::Metadata) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{}, not a regular file", kind_of(meta)),
    )
}

/// The whole of the regular file at `path`, refusing files over
/// `max_bytes` before reading them. At most the size the file had when
/// opened is read: a file that grows meanwhile is an error, not a read
/// without end.
pub fn read_regular(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    let (file, size) = open_regular(path)?;
    if size > max_bytes {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("{size} bytes, more than the {max_bytes} bytes allowed here"),
        ));
    }
    let mut bytes = Vec::new();
    append_sized(file, size, &mut bytes)?;
    Ok(bytes)
}

/// Appends the next `size` bytes of `file` (what is left of it by its
/// size when opened) to `bytes`; a byte more is an error (the file grew
/// while being read), and so is a byte less.
fn append_sized(file: impl Read, size: u64, bytes: &mut Vec<u8>) -> std::io::Result<()> {
    let capacity = usize::try_from(size)
        .map_err(|_| Error::new(ErrorKind::InvalidData, "larger than the address space"))?;
    bytes.reserve_exact(capacity);
    let start = bytes.len();
    file.take(size + 1).read_to_end(bytes)?;
    let read = (bytes.len() - start) as u64;
    if read != size {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("changed while being read ({size} bytes expected, {read} read)"),
        ));
    }
    Ok(())
}

/// The largest header a safetensors file may declare (the format's own
/// limit, 100 MB).
pub const SAFETENSORS_MAX_HEADER: u64 = 100_000_000;

/// The whole of a safetensors file (datasets and checkpoints), after
/// checking its first 8 bytes: the little-endian header length must fit
/// in the file and under [`SAFETENSORS_MAX_HEADER`]. Both are refused
/// before anything more is read or allocated.
pub fn read_safetensors(path: &Path) -> std::io::Result<Vec<u8>> {
    let (mut file, size) = open_regular(path)?;
    let prefix = safetensors_prefix(&mut file, size)?;
    let mut bytes = prefix.to_vec();
    append_sized(file, size - 8, &mut bytes)?;
    Ok(bytes)
}

/// Only the JSON header of a safetensors file (no tensor bytes), after
/// the same checks as [`read_safetensors`]: enough to recognise a file
/// without reading a checkpoint-sized body.
pub fn read_safetensors_header(path: &Path) -> std::io::Result<Vec<u8>> {
    let (mut file, size) = open_regular(path)?;
    let header = u64::from_le_bytes(safetensors_prefix(&mut file, size)?);
    let mut bytes = Vec::new();
    append_sized(file.take(header), header, &mut bytes)?;
    Ok(bytes)
}

/// The 8-byte header length at the start of a safetensors file of `size`
/// bytes, refused unless it fits in the file and under
/// [`SAFETENSORS_MAX_HEADER`].
fn safetensors_prefix(file: &mut File, size: u64) -> std::io::Result<[u8; 8]> {
    let bad = |detail: String| Error::new(ErrorKind::InvalidData, detail);
    if size < 8 {
        return Err(bad(format!(
            "{size} bytes: too short for a safetensors header (8-byte length, then the header)"
        )));
    }
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)?;
    let header = u64::from_le_bytes(prefix);
    if header > size - 8 {
        return Err(bad(format!(
            "the header length field says {header} bytes, but the file has only {} after it \
             (corrupt or truncated?)",
            size - 8
        )));
    }
    if header > SAFETENSORS_MAX_HEADER {
        return Err(bad(format!(
            "the header length field says {header} bytes, over the format's limit of \
             {SAFETENSORS_MAX_HEADER}"
        )));
    }
    Ok(prefix)
}
