//! Fashion-MNIST (Xiao et al. 2017) as a two-task problem, read from the
//! Debian package `dataset-fashion-mnist` (docs/math.md §7): 28×28
//! grey images, 60 000 train and 10 000 test, pixels scaled to [0, 1].
//!
//! Tasks:
//! - "class": the 10 labels (0 T-shirt/top, 1 Trouser, 2 Pullover,
//!   3 Dress, 4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot);
//! - "group": 4 coarse groups derived from the class, [`GROUP_OF_CLASS`]:
//!   0 tops (T-shirt/top, Pullover, Coat, Shirt), 1 bottoms and dresses
//!   (Trouser, Dress: the garments that cover the legs), 2 footwear
//!   (Sandal, Sneaker, Ankle boot), 3 bags (Bag).

use std::path::{Path, PathBuf};

use crate::data::dataset::{Dataset, Targets, TaskData};
use crate::data::idx;
use crate::error::{Error, Result};

/// Where the Debian package installs the files.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Names of the 10 classes, by label.
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Names of the 4 groups, by group id.
pub const GROUP_NAMES: [&str; 4] = ["tops", "bottoms and dresses", "footwear", "bags"];

/// The group of each class label.
pub const GROUP_OF_CLASS: [u32; 10] = [0, 1, 0, 1, 0, 2, 0, 2, 3, 2];

/// Both parts, each with tasks "class" (10 classes) and "group" (4).
#[derive(Clone, Debug, PartialEq)]
pub struct FashionMnist {
    /// The 60 000 training images.
    pub train: Dataset,
    /// The 10 000 test images.
    pub test: Dataset,
}

/// Loads train and test from `dir` (e.g. [`DEFAULT_DIR`]), which holds
/// `{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`.
pub fn load(dir: &Path) -> Result<FashionMnist> {
    Ok(FashionMnist {
        train: load_part(dir, "train")?,
        test: load_part(dir, "t10k")?,
    })
}

/// One part: "train" or "t10k".
pub fn load_part(dir: &Path, part: &str) -> Result<Dataset> {
    let images_path = file(dir, part, "images-idx3")?;
    let labels_path = file(dir, part, "labels-idx1")?;
    let images = idx::read_images(&images_path)?;
    let labels = idx::read_labels(&labels_path)?;
    idx::check_labels(&labels_path, &labels, images.count, CLASS_NAMES.len())?;
    let classes: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let groups = classes
        .iter()
        .map(|&c| GROUP_OF_CLASS[c as usize])
        .collect();
    Dataset::new(
        &images_path.display().to_string(),
        images.count,
        images.pixels_per_image(),
        images.to_f32(),
        vec![
            TaskData::new(
                "class",
                Targets::Classes {
                    classes: CLASS_NAMES.len(),
                    ids: classes,
                },
                None,
            ),
            TaskData::new(
                "group",
                Targets::Classes {
                    classes: GROUP_NAMES.len(),
                    ids: groups,
                },
                None,
            ),
        ],
    )
}

/// The path of one file, or an error saying how to install it.
fn file(dir: &Path, part: &str, kind: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{part}-{kind}-ubyte.gz"));
    if path.is_file() {
        return Ok(path);
    }
    Err(Error::Data {
        file: path.display().to_string(),
        detail: "Fashion-MNIST file not found: install the Debian package \
                 dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"
            .into(),
    })
}
