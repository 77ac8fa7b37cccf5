//! IDX files (the MNIST family): big-endian magic (0x00000803 for u8
//! images [count, rows, cols], 0x00000801 for u8 labels \[count\]), the
//! dimensions as big-endian u32, then the bytes. Files may be gzipped;
//! the gzip header (1f 8b) is detected, not the file name. A gzip file is
//! read member after member; bytes after the last member that are not
//! another member are an error, as is a payload longer or shorter than
//! the dimensions say.

use std::io::Read;
use std::path::Path;

use crate::data::dataset::{Dataset, Targets, TaskData};
use crate::error::{Error, Result};

/// Magic of an unsigned-byte tensor of rank 3 (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of an unsigned-byte tensor of rank 1 (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Grey images as stored: pixels [count, height, width], 0..=255.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows of pixels per image.
    pub height: usize,
    /// Columns of pixels per image.
    pub width: usize,
    /// [count, height, width], row-major.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// Pixels per image.
    pub fn pixels_per_image(&self) -> usize {
        self.height * self.width
    }

    /// Image `i`'s pixels [height, width].
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.pixels_per_image();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Every pixel scaled to [0, 1] (p / 255), [count, height·width].
    pub fn to_f32(&self) -> Vec<f32> {
        self.pixels.iter().map(|&p| p as f32 / 255.0).collect()
    }
}

fn data_err(path: &Path, detail: String) -> Error {
    Error::Data {
        file: path.display().to_string(),
        detail,
    }
}

/// The first bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Deflate expands at most ~1032:1; a header asking for more bytes than
/// the compressed file could hold is refused before any allocation.
const MAX_DEFLATE_RATIO: u64 = 1100;

/// The gunzipped content of a gzip file: its members one after the other
/// (as `gzip -d` reads `cat a.gz b.gz`), each checked against its CRC
/// and length. Bytes after the last member that do not start another one
/// are an error, not silently ignored.
struct GzMembers<'a> {
    decoder: Option<flate2::bufread::GzDecoder<&'a [u8]>>,
}

impl<'a> GzMembers<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        GzMembers {
            decoder: Some(flate2::bufread::GzDecoder::new(bytes)),
        }
    }
}

impl Read for GzMembers<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This member ended: what follows it is another member or nothing.
            let Some(done) = self.decoder.take() else {
                return Ok(0);
            };
            let rest = done.into_inner();
            if rest.is_empty() {
                return Ok(0);
            }
            if !rest.starts_with(&GZIP_MAGIC) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} bytes of trailing data after the gzip stream",
                        rest.len()
                    ),
                ));
            }
            self.decoder = Some(flate2::bufread::GzDecoder::new(rest));
        }
    }
}

/// Reads an IDX tensor of `magic` from the file at `path`, gzipped or
/// not: checks the magic, the dimensions against what the file can hold
/// (before allocating), and that the payload is exactly what the
/// dimensions say. Returns the dimensions and the payload.
fn read_idx(path: &Path, magic: u32, what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let raw = crate::util::fs::read_regular(path, u64::MAX)
        .map_err(|e| data_err(path, format!("cannot read: {e}")))?;
    if raw.starts_with(&GZIP_MAGIC) {
        let limit = (raw.len() as u64).saturating_mul(MAX_DEFLATE_RATIO);
        parse(
            path,
            GzMembers::new(&raw),
            magic,
            what,
            Content::Gzip { limit },
        )
    } else {
        let total = raw.len() as u64;
        parse(path, raw.as_slice(), magic, what, Content::Raw { total })
    }
}

/// What the IDX bytes come from, for the size checks and messages.
#[derive(Clone, Copy)]
enum Content {
    /// A plain file of `total` bytes.
    Raw { total: u64 },
    /// A gzip file that can hold at most `limit` bytes once gunzipped.
    Gzip { limit: u64 },
}

fn read_error(path: &Path, content: Content, e: std::io::Error) -> Error {
    match content {
        Content::Gzip { .. } => data_err(path, format!("gzip stream is corrupt or truncated: {e}")),
        Content::Raw { .. } => data_err(path, format!("cannot read: {e}")),
    }
}

/// Reads `buf.len()` bytes, or returns how many there were before the end.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Checks the magic and sizes; returns the dimensions and the payload.
fn parse(
    path: &Path,
    mut bytes: impl Read,
    magic: u32,
    what: &str,
    content: Content,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let err = |detail: String| data_err(path, detail);
    let mut word = [0u8; 4];
    let got = read_full(&mut bytes, &mut word).map_err(|e| read_error(path, content, e))?;
    if got < 4 {
        return Err(err(format!("{got} bytes: too short for an IDX header")));
    }
    let found = u32::from_be_bytes(word);
    if found != magic {
        // Only an IDX magic (0x0000TTRR: type code 0x08..=0x0e, rank
        // 1..=4) is shown: other first bytes are the file's content.
        let idx_shaped = found >> 16 == 0
            && (0x08..=0x0e).contains(&(found >> 8))
            && (1..=4).contains(&(found & 0xff));
        return Err(if idx_shaped {
            err(format!(
                "magic 0x{found:08x}, expected 0x{magic:08x} (IDX {what})"
            ))
        } else {
            err(format!(
                "not an IDX file: its first 4 bytes are not an IDX magic number \
                 (expected 0x{magic:08x}, IDX {what})"
            ))
        });
    }
    let rank = (magic & 0xff) as usize;
    let header = 4 * (rank + 1);
    let mut dims = Vec::with_capacity(rank);
    for i in 0..rank {
        let got = read_full(&mut bytes, &mut word).map_err(|e| read_error(path, content, e))?;
        if got < 4 {
            return Err(err(format!(
                "truncated header: {} bytes, expected {header}",
                4 * (i + 1) + got
            )));
        }
        dims.push(u32::from_be_bytes(word) as usize);
    }
    let payload = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| err(format!("dimensions {dims:?} overflow")))?;
    let mismatch = |found: u64| {
        let kind = if found < payload as u64 {
            "truncated"
        } else {
            "too long"
        };
        err(format!(
            "{kind}: dimensions {dims:?} need {payload} data bytes after the header, found {found}"
        ))
    };
    match content {
        Content::Raw { total } if total - header as u64 != payload as u64 => {
            return Err(mismatch(total - header as u64));
        }
        Content::Gzip { limit } if payload as u64 > limit => {
            return Err(err(format!(
                "dimensions {dims:?} need {payload} data bytes, more than this gzip file \
                 can hold"
            )));
        }
        _ => {}
    }
    // Grows as bytes arrive: a gzip stream shorter than its header says
    // costs only what it holds.
    let mut data = Vec::new();
    (&mut bytes)
        .take(payload as u64)
        .read_to_end(&mut data)
        .map_err(|e| read_error(path, content, e))?;
    if data.len() < payload {
        return Err(mismatch(data.len() as u64));
    }
    // The end must follow (for gzip this also checks what trails it).
    let mut extra = [0u8; 1];
    if read_full(&mut bytes, &mut extra).map_err(|e| read_error(path, content, e))? > 0 {
        let more = 1 + std::io::copy(&mut bytes, &mut std::io::sink())
            .map_err(|e| read_error(path, content, e))?;
        return Err(mismatch(payload as u64 + more));
    }
    Ok((dims, data))
}

/// Reads an IDX image file (magic 0x00000803), gzipped or not.
pub fn read_images(path: &Path) -> Result<IdxImages> {
    let (dims, pixels) = read_idx(path, IMAGES_MAGIC, "images")?;
    Ok(IdxImages {
        count: dims[0],
        height: dims[1],
        width: dims[2],
        pixels,
    })
}

/// Reads an IDX label file (magic 0x00000801), gzipped or not.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    Ok(read_idx(path, LABELS_MAGIC, "labels")?.1)
}

/// Writes images (magic, dims, pixels; not gzipped): for tests and tools.
pub fn write_images(path: &Path, images: &IdxImages) -> Result<()> {
    let mut bytes = IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [images.count, images.height, images.width] {
        bytes.extend_from_slice(&(d as u32).to_be_bytes());
    }
    bytes.extend_from_slice(&images.pixels);
    std::fs::write(path, bytes).map_err(|e| data_err(path, format!("cannot write: {e}")))
}

/// Writes labels (not gzipped): for tests and tools.
pub fn write_labels(path: &Path, labels: &[u8]) -> Result<()> {
    let mut bytes = LABELS_MAGIC.to_be_bytes().to_vec();
    bytes.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    bytes.extend_from_slice(labels);
    std::fs::write(path, bytes).map_err(|e| data_err(path, format!("cannot write: {e}")))
}

/// An image file and its label file as a one-task classification dataset
/// (task `task`, labels in [0, classes)), pixels scaled to [0, 1].
pub fn read_classification(
    images: &Path,
    labels: &Path,
    task: &str,
    classes: usize,
) -> Result<Dataset> {
    let img = read_images(images)?;
    let ids = read_labels(labels)?;
    check_labels(labels, &ids, img.count, classes)?;
    let ids = ids.iter().map(|&l| l as u32).collect();
    Dataset::new(
        &images.display().to_string(),
        img.count,
        img.pixels_per_image(),
        img.to_f32(),
        vec![TaskData::new(task, Targets::Classes { classes, ids }, None)],
    )
}

/// Labels must match the image count and lie in [0, classes).
pub(crate) fn check_labels(
    path: &Path,
    labels: &[u8],
    images: usize,
    classes: usize,
) -> Result<()> {
    if labels.len() != images {
        return Err(data_err(
            path,
            format!("{} labels for {images} images", labels.len()),
        ));
    }
    if let Some(i) = labels.iter().position(|&l| l as usize >= classes) {
        return Err(data_err(
            path,
            format!("label {} of image {i} is outside [0, {classes})", labels[i]),
        ));
    }
    Ok(())
}
