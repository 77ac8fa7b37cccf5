//! IDX files (the MNIST family): big-endian magic (0x00000803 for u8
//! images [count, rows, cols], 0x00000801 for u8 labels \[count\]), the
//! dimensions as big-endian u32, then the bytes. Files may be gzipped;
//! the gzip header (1f 8b) is detected, not the file name.

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

/// The file's bytes, gunzipped when they start with the gzip magic.
fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| data_err(path, format!("cannot read: {e}")))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    flate2::read::GzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| data_err(path, format!("gzip stream is corrupt or truncated: {e}")))?;
    Ok(out)
}

/// Checks the magic and sizes; returns the dimensions and the payload.
fn parse(path: &Path, bytes: &[u8], magic: u32, what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let err = |detail: String| data_err(path, detail);
    let word = |i: usize| -> Option<u32> {
        let b = bytes.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let found = word(0).ok_or_else(|| {
        err(format!(
            "{} bytes: too short for an IDX header",
            bytes.len()
        ))
    })?;
    if found != magic {
        return Err(err(format!(
            "magic 0x{found:08x}, expected 0x{magic:08x} (IDX {what})"
        )));
    }
    let rank = (magic & 0xff) as usize;
    let dims: Vec<usize> = (1..=rank)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            err(format!(
                "truncated header: {} bytes, expected {}",
                bytes.len(),
                4 * (rank + 1)
            ))
        })?;
    let header = 4 * (rank + 1);
    let payload = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| err(format!("dimensions {dims:?} overflow")))?;
    let found = bytes.len() - header;
    if found != payload {
        let kind = if found < payload {
            "truncated"
        } else {
            "too long"
        };
        return Err(err(format!(
            "{kind}: dimensions {dims:?} need {payload} data bytes after the header, found {found}"
        )));
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Reads an IDX image file (magic 0x00000803), gzipped or not.
pub fn read_images(path: &Path) -> Result<IdxImages> {
    let bytes = read_bytes(path)?;
    let (dims, pixels) = parse(path, &bytes, IMAGES_MAGIC, "images")?;
    Ok(IdxImages {
        count: dims[0],
        height: dims[1],
        width: dims[2],
        pixels,
    })
}

/// Reads an IDX label file (magic 0x00000801), gzipped or not.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_bytes(path)?;
    Ok(parse(path, &bytes, LABELS_MAGIC, "labels")?.1)
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
