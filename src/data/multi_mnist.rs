//! MultiMNIST-style two-task data (Sener & Koltun 2018; docs/math.md
//! §7): each sample overlays two source images on one canvas of the same
//! size, one shifted up-left and one down-right, pixel = max of the two.
//! Task "left" is the class of the up-left image, "right" that of the
//! down-right one.
//!
//! Choices, fixed by the seed: the up-left image is source sample `i mod
//! count` (so every image is used once per `count` samples), the other is
//! drawn uniformly; each shift is drawn per axis in [0, max_shift]; pixels
//! shifted off the canvas are dropped. Sener & Koltun place the digits on
//! a 36×36 canvas and resize to 28×28; overlaying on the original canvas
//! keeps the code free of resampling and gives the same kind of task.

use crate::data::dataset::{Dataset, Targets, TaskData};
use crate::data::idx::IdxImages;
use crate::error::{Error, Result};
use crate::util::rng::Rng;

/// How to build the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MultiMnistSpec {
    /// Overlaid images to build.
    pub samples: usize,
    /// Largest shift per axis, in pixels (4 suits 28×28 digits, whose
    /// border is about 4 pixels).
    pub max_shift: usize,
    /// Seed of the image pairs and shifts.
    pub seed: u64,
}

/// Builds `spec.samples` overlaid images from `images` and their labels in
/// [0, classes); x is [samples, height·width] in [0, 1].
pub fn build(
    images: &IdxImages,
    labels: &[u8],
    classes: usize,
    spec: MultiMnistSpec,
) -> Result<Dataset> {
    let err = |detail: String| Error::Data {
        file: "multi-mnist".into(),
        detail,
    };
    if labels.len() != images.count || images.count == 0 {
        return Err(err(format!(
            "{} labels for {} images (need ≥ 1 image, one label each)",
            labels.len(),
            images.count
        )));
    }
    if let Some(i) = labels.iter().position(|&l| l as usize >= classes) {
        return Err(err(format!(
            "label {} of image {i} is outside [0, {classes})",
            labels[i]
        )));
    }
    let (h, w) = (images.height, images.width);
    let mut rng = Rng::new(spec.seed);
    let draw = |rng: &mut Rng, n: usize| (rng.next_u64() % n as u64) as usize;
    let mut x = vec![0f32; spec.samples * h * w];
    let mut left = Vec::with_capacity(spec.samples);
    let mut right = Vec::with_capacity(spec.samples);
    for s in 0..spec.samples {
        let a = s % images.count;
        let b = draw(&mut rng, images.count);
        let mut shift = || draw(&mut rng, spec.max_shift + 1) as isize;
        let (ay, ax, by, bx) = (-shift(), -shift(), shift(), shift());
        let canvas = &mut x[s * h * w..(s + 1) * h * w];
        overlay_max(canvas, images.image(a), h, w, ay, ax);
        overlay_max(canvas, images.image(b), h, w, by, bx);
        left.push(labels[a] as u32);
        right.push(labels[b] as u32);
    }
    let task = |name: &str, ids| TaskData::new(name, Targets::Classes { classes, ids }, None);
    Dataset::new(
        "multi-mnist",
        spec.samples,
        h * w,
        x,
        vec![task("left", left), task("right", right)],
    )
}

/// canvas = max(canvas, image shifted by (dy, dx)), pixels scaled to [0, 1].
fn overlay_max(canvas: &mut [f32], image: &[u8], h: usize, w: usize, dy: isize, dx: isize) {
    for y in 0..h {
        let ty = y as isize + dy;
        if ty < 0 || ty >= h as isize {
            continue;
        }
        for xx in 0..w {
            let tx = xx as isize + dx;
            if tx < 0 || tx >= w as isize {
                continue;
            }
            let out = &mut canvas[ty as usize * w + tx as usize];
            *out = out.max(image[y * w + xx] as f32 / 255.0);
        }
    }
}
