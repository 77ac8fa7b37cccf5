//! The data layer: safetensors / CSV / IDX readers (round trips and every
//! bad-input error, with the file, tensor, line and column named), splits,
//! epoch orders, batches in the model's input layout (the padded last
//! batch), the MultiMNIST-style builder and Fashion-MNIST from the Debian
//! package. Host only, except one check against a built `ModelSpec`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use manytask::arch::{ModelNodes, ModelSpec, Sharing, TaskKind, TaskSpec};
use manytask::config::Config;
use manytask::data::batch::{Batch, Batcher, LastBatch};
use manytask::data::csv::{CsvColumns, CsvTask};
use manytask::data::dataset::{
    Dataset, Order, SplitFractions, TargetScale, Targets, TaskData, TaskSchema,
};
use manytask::data::fashion_mnist::{self, FashionMnist, GROUP_OF_CLASS};
use manytask::data::idx::{self, IdxImages};
use manytask::data::multi_mnist::{self, MultiMnistSpec};
use manytask::data::safetensors::{self as st, Precision};
use manytask::data::synthetic::{Synthetic, SyntheticSpec};
use manytask::gpu::GpuContext;
use manytask::graph::{Optimizer, Program, StepOptions};
use manytask::types::Activation;
use manytask::types::Sgd;
use safetensors::tensor::{Dtype, TensorView};

use crate::common::{contexts, manytask, scratch_dir};

/// A fresh path in the temp dir, unique per test and process.
fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("manytask-data-{}-{name}", std::process::id()))
}

fn err_text<T: std::fmt::Debug>(r: manytask::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

/// Asserts `message` contains every one of `parts`.
fn assert_mentions(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "'{message}' does not mention '{p}'");
    }
}

/// 10 samples, 3 features; tasks "digit" (4 classes, 2 missing),
/// "reg" (2 outputs), "tags" (3 binary labels).
fn small() -> Dataset {
    let n = 10;
    let x = (0..n * 3).map(|i| i as f32 * 0.5 - 3.0).collect();
    let ids = (0..n).map(|i| (i % 4) as u32).collect();
    let mask = (0..n).map(|i| i != 2 && i != 7).collect();
    let reg = (0..n * 2).map(|i| i as f32 * 0.25).collect();
    let tags = (0..n * 3).map(|i| ((i * 7) % 2) as f32).collect();
    Dataset::new(
        "small",
        n,
        3,
        x,
        vec![
            TaskData::new("digit", Targets::Classes { classes: 4, ids }, Some(mask)),
            TaskData::new(
                "reg",
                Targets::Real {
                    outputs: 2,
                    values: reg,
                },
                None,
            ),
            TaskData::new(
                "tags",
                Targets::Binary {
                    labels: 3,
                    values: tags,
                },
                None,
            ),
        ],
    )
    .unwrap()
}

/// Task specs for `small()`, every task masked (padding allowed).
fn small_specs() -> Vec<TaskSpec> {
    small()
        .schema()
        .into_iter()
        .map(|s| {
            let mut t = TaskSpec::new(&s.name, s.kind, &[]);
            t.masked = true;
            t
        })
        .collect()
}

// ---- safetensors ----

#[test]
fn safetensors_round_trip_keeps_everything() {
    let data = small();
    let path = temp("round.safetensors");
    st::write(&path, &data, Precision::F32).unwrap();
    // From the metadata, and with the tasks named (a subset, reordered).
    let back = st::read(&path, None).unwrap();
    assert_eq!(back.x(), data.x());
    assert_eq!(back.tasks(), data.tasks());
    let schema = [TaskSchema::new("tags", TaskKind::Binary { labels: 3 })];
    let some = st::read(&path, Some(&schema)).unwrap();
    assert_eq!(some.tasks().len(), 1);
    assert_eq!(some.task("tags"), data.task("tags"));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn safetensors_files_are_bit_identical_for_the_same_data() {
    // Four metadata keys: the crate writes them in hash order, which
    // differs from map to map unless the header is sorted.
    let data = small()
        .with_target_scale(
            "reg",
            TargetScale {
                mean: 1.0,
                std: 2.0,
            },
        )
        .unwrap();
    let (a, b) = (temp("same-a.safetensors"), temp("same-b.safetensors"));
    for _ in 0..4 {
        st::write(&a, &data, Precision::F32).unwrap();
        st::write(&b, &data, Precision::F32).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }
    let back = st::read(&a, None).unwrap();
    assert_eq!((back.x(), back.tasks()), (data.x(), data.tasks()));
    assert_eq!(back.target_scale("reg"), data.target_scale("reg"));
    for p in [a, b] {
        std::fs::remove_file(p).unwrap();
    }
}

#[test]
fn safetensors_f16_features_widen_exactly() {
    let data = small(); // multiples of 0.5 in [-3, 12): exact in f16
    let path = temp("half.safetensors");
    st::write(&path, &data, Precision::F16).unwrap();
    let back = st::read(&path, None).unwrap();
    assert_eq!(back.x(), data.x());
    std::fs::remove_file(&path).unwrap();
    // Beyond ±65504 f16 would store Inf: refused when writing.
    let task = TaskData::new(
        "r",
        Targets::Real {
            outputs: 1,
            values: vec![0.0],
        },
        None,
    );
    let big = Dataset::new("big", 1, 2, vec![1.0, 7e4], vec![task]).unwrap();
    let e = err_text(st::write(&path, &big, Precision::F16));
    assert_mentions(
        &e,
        &[
            "half.safetensors",
            "70000",
            "sample 0, feature 1",
            "f16 range",
        ],
    );
}

/// Writes tensors given as (name, dtype, shape, little-endian bytes).
fn write_raw(name: &str, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> PathBuf {
    let path = temp(name);
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
    path
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Task "c" with 3 classes.
fn class_task() -> Vec<TaskSchema> {
    vec![TaskSchema::new(
        "c",
        TaskKind::Classification { classes: 3 },
    )]
}

/// Reads a file of x [2, 2] plus `y` as task "c" (3 classes), returning
/// the error text.
fn read_bad(name: &str, x: (Dtype, Vec<u8>), y: Option<(Dtype, Vec<usize>, Vec<u8>)>) -> String {
    let mut tensors = vec![("x", x.0, vec![2, 2], x.1)];
    if let Some((d, s, b)) = y {
        tensors.push(("y.c", d, s, b));
    }
    let path = write_raw(name, &tensors);
    let text = err_text(st::read(&path, Some(&class_task())));
    std::fs::remove_file(&path).unwrap();
    assert!(text.contains(name), "'{text}' does not name the file");
    text
}

#[test]
fn safetensors_rejects_bad_tensors_naming_file_and_tensor() {
    let x = || (Dtype::F32, f32_bytes(&[0.0, 1.0, 2.0, 3.0]));
    let y = |ids: &[i64]| Some((Dtype::I64, vec![ids.len()], i64_bytes(ids)));

    let e = read_bad("missing.safetensors", x(), None);
    assert_mentions(&e, &["'y.c'", "missing"]);

    let e = read_bad(
        "dtype.safetensors",
        x(),
        Some((Dtype::F32, vec![2], f32_bytes(&[0.0, 1.0]))),
    );
    assert_mentions(&e, &["'y.c'", "F32", "I64"]);

    let e = read_bad("xdtype.safetensors", (Dtype::I32, vec![0; 16]), y(&[0, 1]));
    assert_mentions(&e, &["'x'", "I32", "F32 or F16"]);

    let e = read_bad("rows.safetensors", x(), y(&[0, 1, 2]));
    assert_mentions(&e, &["'y.c'", "[3]", "2 samples"]);

    let e = read_bad("range.safetensors", x(), y(&[0, 3]));
    assert_mentions(&e, &["'y.c'", "class id 3", "sample 1", "[0, 3)"]);

    let e = read_bad("negative.safetensors", x(), y(&[-1, 0]));
    assert_mentions(&e, &["'y.c'", "class id -1", "sample 0"]);

    let nan = (Dtype::F32, f32_bytes(&[0.0, 1.0, f32::NAN, 3.0]));
    let e = read_bad("nan.safetensors", nan, y(&[0, 1]));
    assert_mentions(&e, &["'x'", "NaN", "sample 1, feature 0"]);

    // A real target of Inf, and a mask that is not 0/1.
    let path = write_raw(
        "inf.safetensors",
        &[
            ("x", Dtype::F32, vec![2, 1], f32_bytes(&[0.0, 1.0])),
            ("y.r", Dtype::F32, vec![2], f32_bytes(&[1.0, f32::INFINITY])),
            ("mask.r", Dtype::U8, vec![2], vec![1, 2]),
        ],
    );
    let reg = [TaskSchema::new("r", TaskKind::Regression { outputs: 1 })];
    assert_mentions(
        &err_text(st::read(&path, Some(&reg))),
        &["'y.r'", "inf", "sample 1"],
    );
    let wide = [TaskSchema::new("r", TaskKind::Regression { outputs: 2 })];
    assert_mentions(
        &err_text(st::read(&path, Some(&wide))),
        &["'y.r'", "[2, 2]"],
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn safetensors_rejects_corrupt_and_truncated_files() {
    let path = temp("trunc.safetensors");
    st::write(&path, &small(), Precision::F32).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
    assert_mentions(
        &err_text(st::read(&path, None)),
        &["trunc.safetensors", "not a valid safetensors file"],
    );
    std::fs::write(&path, b"this is not a tensor file at all").unwrap();
    assert_mentions(
        &err_text(st::read(&path, None)),
        &["not a valid safetensors file"],
    );
    std::fs::remove_file(&path).unwrap();
    assert_mentions(
        &err_text(st::read(&path, None)),
        &["trunc.safetensors", "cannot read"],
    );
}

// ---- CSV ----

fn write_text(name: &str, text: &str) -> PathBuf {
    let path = temp(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn csv_columns() -> CsvColumns {
    CsvColumns {
        features: Some(vec!["a".into(), "b".into()]),
        exclude: Vec::new(),
        tasks: vec![
            CsvTask::new("kind", TaskKind::Classification { classes: 3 }, &["k"]),
            CsvTask::new("size", TaskKind::Regression { outputs: 2 }, &["w", "h"]),
        ],
    }
}

#[test]
fn csv_reads_features_targets_and_missing_labels() {
    let path = write_text(
        "good.csv",
        "a,b,k,w,h,unused\n1,2,0,0.5,1.5,x\n3, 4 ,,,,y\n5,6,2,2.5,3.5,z\n",
    );
    let data = manytask::data::csv::read(&path, &csv_columns()).unwrap();
    assert_eq!((data.rows(), data.features()), (3, 2));
    assert_eq!(data.x(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let kind = data.task("kind").unwrap();
    assert_eq!(
        kind.targets,
        Targets::Classes {
            classes: 3,
            ids: vec![0, 0, 2]
        }
    );
    assert_eq!(kind.mask, Some(vec![true, false, true]));
    let size = data.task("size").unwrap();
    assert_eq!(size.mask, Some(vec![true, false, true]));
    std::fs::remove_file(&path).unwrap();

    // features: None takes every column no task uses.
    let path = write_text("all.csv", "a,k,b\n1,1,2\n");
    let columns = CsvColumns {
        features: None,
        exclude: Vec::new(),
        tasks: vec![CsvTask::new(
            "kind",
            TaskKind::Classification { classes: 2 },
            &["k"],
        )],
    };
    let data = manytask::data::csv::read(&path, &columns).unwrap();
    assert_eq!(data.x(), &[1.0, 2.0]);
    assert_eq!(data.task("kind").unwrap().mask, None);
    std::fs::remove_file(&path).unwrap();
}

/// The error text of reading `text` with `csv_columns()`.
fn csv_error(name: &str, text: &str) -> String {
    let path = write_text(name, text);
    let e = err_text(manytask::data::csv::read(&path, &csv_columns()));
    std::fs::remove_file(&path).unwrap();
    assert!(e.contains(name), "'{e}' does not name the file");
    e
}

#[test]
fn csv_errors_name_line_and_column() {
    let head = "a,b,k,w,h\n1,2,0,0.5,1.5\n";
    let e = csv_error("ragged.csv", &format!("{head}1,2,0,0.5\n"));
    assert_mentions(&e, &["line 3", "4 fields", "header has 5"]);
    let e = csv_error(
        "text.csv",
        &format!("{head}1,2,0,0.5,1.5\n1,two,0,0.5,1.5\n"),
    );
    assert_mentions(&e, &["line 4", "column 2 ('b')", "not a number"]);
    assert!(!e.contains("two"), "{e} quotes the cell");
    let e = csv_error("empty.csv", &format!("{head}1,,0,0.5,1.5\n"));
    assert_mentions(&e, &["line 3", "column 2 ('b')", "empty feature cell"]);
    let e = csv_error("class.csv", &format!("{head}1,2,3,0.5,1.5\n"));
    assert_mentions(&e, &["line 3", "column 3 ('k')", "class id 3", "[0, 3)"]);
    let e = csv_error("float_class.csv", &format!("{head}1,2,1.5,0.5,1.5\n"));
    assert_mentions(&e, &["line 3", "column 3 ('k')", "not an integer"]);
    let e = csv_error("half.csv", &format!("{head}1,2,1,,1.5\n"));
    assert_mentions(&e, &["line 3", "task 'size'", "1 of 2 cells empty"]);
    let e = csv_error("nocol.csv", "a,b,k,w\n1,2,0,0.5\n");
    assert_mentions(&e, &["no column 'h'"]);
}

// ---- IDX ----

fn tiny_images(count: usize) -> IdxImages {
    IdxImages {
        count,
        height: 4,
        width: 5,
        pixels: (0..count * 20).map(|i| (i * 37 % 256) as u8).collect(),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn idx_reads_plain_and_gzipped_files() {
    let images = tiny_images(3);
    let labels = vec![2u8, 0, 9];
    let (ip, lp) = (temp("img.idx"), temp("lab.idx"));
    idx::write_images(&ip, &images).unwrap();
    idx::write_labels(&lp, &labels).unwrap();
    assert_eq!(idx::read_images(&ip).unwrap(), images);
    // The same bytes gzipped read the same; the name says nothing.
    std::fs::write(&lp, gzip(&std::fs::read(&lp).unwrap())).unwrap();
    assert_eq!(idx::read_labels(&lp).unwrap(), labels);
    let data = idx::read_classification(&ip, &lp, "digit", 10).unwrap();
    assert_eq!((data.rows(), data.features()), (3, 20));
    assert_eq!(data.x()[1], 37.0 / 255.0);
    let e = err_text(idx::read_classification(&ip, &lp, "digit", 5));
    assert_mentions(&e, &["lab.idx", "label 9 of image 2", "[0, 5)"]);
    for p in [ip, lp] {
        std::fs::remove_file(p).unwrap();
    }
}

#[test]
fn idx_rejects_wrong_magic_and_truncated_files() {
    let (ip, lp) = (temp("bad-img.idx"), temp("bad-lab.idx"));
    idx::write_images(&ip, &tiny_images(2)).unwrap();
    idx::write_labels(&lp, &[1, 2]).unwrap();
    // Labels read as images, and images as labels.
    let e = err_text(idx::read_images(&lp));
    assert_mentions(
        &e,
        &["bad-lab.idx", "magic 0x00000801", "expected 0x00000803"],
    );
    let e = err_text(idx::read_labels(&ip));
    assert_mentions(&e, &["magic 0x00000803", "expected 0x00000801"]);

    let bytes = std::fs::read(&ip).unwrap();
    std::fs::write(&ip, &bytes[..bytes.len() - 3]).unwrap();
    let e = err_text(idx::read_images(&ip));
    assert_mentions(
        &e,
        &["bad-img.idx", "truncated", "[2, 4, 5]", "40", "found 37"],
    );
    std::fs::write(&ip, &bytes[..10]).unwrap();
    assert_mentions(&err_text(idx::read_images(&ip)), &["truncated header"]);
    // A gzip stream cut short.
    let gz = gzip(&bytes);
    std::fs::write(&ip, &gz[..gz.len() / 2]).unwrap();
    assert_mentions(&err_text(idx::read_images(&ip)), &["gzip", "truncated"]);
    for p in [ip, lp] {
        std::fs::remove_file(p).unwrap();
    }
}

// ---- splits, orders, batches ----

#[test]
fn splits_are_disjoint_cover_everything_and_follow_the_seed() {
    let data = small();
    let f = SplitFractions {
        validation: 0.2,
        test: 0.3,
    };
    let s = data.split_indices(f, 7).unwrap();
    assert_eq!((s.train.len(), s.validation.len(), s.test.len()), (5, 2, 3));
    let mut all: Vec<usize> = [s.train.as_slice(), &s.validation, &s.test].concat();
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    assert_eq!(data.split_indices(f, 7).unwrap(), s);
    assert_ne!(data.split_indices(f, 8).unwrap(), s);
    // The split datasets hold those samples.
    let parts = data.split(f, 7).unwrap();
    assert_eq!(parts.test.sample(0), data.sample(s.test[0]));
    assert_eq!(parts.validation.rows(), 2);
    let bad = SplitFractions {
        validation: 0.6,
        test: 0.5,
    };
    assert_mentions(&err_text(data.split(bad, 7)), &["small", "sum to ≤ 1"]);
}

#[test]
fn shuffle_is_fixed_by_seed_and_epoch() {
    let a = Order::Shuffled { seed: 1 };
    let order = a.indices(100, 0);
    assert_eq!(order, a.indices(100, 0));
    assert_ne!(order, Order::Shuffled { seed: 2 }.indices(100, 0));
    assert_ne!(order, a.indices(100, 1));
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    assert_eq!(Order::Sequential.indices(5, 3), vec![0, 1, 2, 3, 4]);
}

#[test]
fn last_batch_is_padded_with_masked_rows() {
    let data = small(); // 10 samples
    let specs = small_specs();
    let batcher = Batcher::new(&data, &specs, 4).unwrap();
    let batches: Vec<_> = batcher
        .epoch(Order::Sequential, 0, LastBatch::Pad)
        .unwrap()
        .collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(
        batches.iter().map(|b| b.real_rows).collect::<Vec<_>>(),
        [4, 4, 2]
    );
    let last = &batches[2];
    assert_eq!(last.rows, 4);
    assert_eq!(last.x.len(), 4 * 3);
    assert_eq!(&last.x[..6], &data.x()[8 * 3..]);
    assert!(last.x[6..].iter().all(|&v| v == 0.0));
    let masks = last.masks.as_ref().unwrap(); // [3 tasks, 4 rows]
    assert_eq!(masks, &[1., 1., 0., 0., 1., 1., 0., 0., 1., 1., 0., 0.]);
    // Missing labels (samples 2 and 7) are masked in their batches.
    assert_eq!(&batches[0].masks.as_ref().unwrap()[..4], &[1., 1., 0., 1.]);
    assert_eq!(&batches[1].masks.as_ref().unwrap()[..4], &[1., 1., 1., 0.]);

    let dropped = batcher
        .epoch(Order::Sequential, 0, LastBatch::Drop)
        .unwrap();
    assert_eq!(dropped.len(), 2);

    // A model that does not mask every task cannot take padding.
    let mut unmasked = specs.clone();
    unmasked[1].masked = false;
    let b = Batcher::new(&data, &unmasked, 4).unwrap();
    let e = err_text(b.epoch(Order::Sequential, 0, LastBatch::Pad));
    assert_mentions(&e, &["2 padding rows", "masked = true", "LastBatch::Drop"]);
    assert_eq!(
        b.epoch(Order::Sequential, 0, LastBatch::Drop)
            .unwrap()
            .len(),
        2
    );
    // Nor can a task with missing labels go unmasked.
    unmasked[0].masked = false;
    let e = err_text(Batcher::new(&data, &unmasked, 4));
    assert_mentions(&e, &["'digit'", "missing labels"]);
}

#[test]
fn batch_layout_matches_the_model_inputs() {
    let data = small();
    // Model order differs from the data's: reg, digit, tags.
    let specs = small_specs();
    let model = ModelSpec {
        init: manytask::types::WeightInit::Glorot,
        rows: 6,
        inputs: 3,
        activation: Activation::Relu,
        sharing: Sharing::Hard { trunk: vec![8] },
        tasks: vec![specs[1].clone(), specs[0].clone(), specs[2].clone()],
    };
    let built = model.build(&contexts()[0]).unwrap();
    let nodes = &built.nodes;
    let batcher = Batcher::for_model(&data, &model).unwrap();
    assert_eq!(batcher.columns(), nodes.columns);
    let samples = [9, 0, 2, 5];
    let batch = batcher.batch(&samples).unwrap();
    let shape_len = |n| built.graph.shape(n).iter().product::<usize>();
    assert_eq!(batch.x.len(), shape_len(nodes.x));
    let labels = batch.labels.as_ref().unwrap();
    assert_eq!(labels.len(), shape_len(nodes.labels.unwrap()));
    let targets = batch.targets.as_ref().unwrap();
    assert_eq!(targets.len(), shape_len(nodes.targets.unwrap()));
    let masks = batch.masks.as_ref().unwrap();
    assert_eq!(masks.len(), shape_len(nodes.masks.unwrap()));

    // Every value where the model reads it: row r is sample samples[r].
    let width: usize = nodes.columns.iter().map(|c| c.1).sum();
    let Some(TaskData {
        targets: Targets::Real { values: reg, .. },
        ..
    }) = data.task("reg")
    else {
        unreachable!()
    };
    let Some(TaskData {
        targets: Targets::Binary { values: tags, .. },
        ..
    }) = data.task("tags")
    else {
        unreachable!()
    };
    let Some(TaskData {
        targets: Targets::Classes { ids, .. },
        ..
    }) = data.task("digit")
    else {
        unreachable!()
    };
    for (r, &s) in samples.iter().enumerate() {
        assert_eq!(&batch.x[r * 3..r * 3 + 3], data.sample(s));
        let row = &targets[r * width..(r + 1) * width];
        let (reg_col, _) = nodes.columns[0];
        let (tag_col, _) = nodes.columns[2];
        assert_eq!(&row[reg_col..reg_col + 2], &reg[s * 2..s * 2 + 2]);
        assert_eq!(&row[tag_col..tag_col + 3], &tags[s * 3..s * 3 + 3]);
        assert_eq!(labels[r], ids[s]); // the one class task: labels row 0
        assert_eq!(masks[6 + r], if s == 2 { 0.0 } else { 1.0 }); // digit is task 1
    }
    assert_eq!(batch.real_rows, 4);
    assert!(batch.x[4 * 3..].iter().all(|&v| v == 0.0));

    let wrong = ModelSpec { inputs: 4, ..model };
    assert_mentions(
        &err_text(Batcher::for_model(&data, &wrong)),
        &["4 inputs", "3 features"],
    );
}

/// Writes a batch into a program's inputs, as `manytask train` will.
fn feed(ctx: &GpuContext, p: &Program, nodes: &ModelNodes, batch: &Batch) {
    p.input(nodes.x).unwrap().write_f32(ctx, &batch.x).unwrap();
    if let (Some(n), Some(v)) = (nodes.labels, &batch.labels) {
        p.input(n).unwrap().write_u32(ctx, v).unwrap();
    }
    if let (Some(n), Some(v)) = (nodes.targets, &batch.targets) {
        p.input(n).unwrap().write_f32(ctx, v).unwrap();
    }
    if let (Some(n), Some(v)) = (nodes.masks, &batch.masks) {
        p.input(n).unwrap().write_f32(ctx, v).unwrap();
    }
}

#[test]
fn padded_batch_gives_the_losses_of_its_real_rows() {
    // The same 4 samples as a full batch of a 4-row model and padded into
    // a 6-row one (same seed, so the same parameters): the padding rows
    // must not change any task's loss or labelled count.
    let data = small();
    let samples = [9, 0, 2, 5];
    for ctx in contexts() {
        let mut reports = Vec::new();
        for rows in [4, 6] {
            let model = ModelSpec {
                init: manytask::types::WeightInit::Glorot,
                rows,
                inputs: 3,
                activation: Activation::Tanh,
                sharing: Sharing::Hard { trunk: vec![8] },
                tasks: small_specs(),
            };
            let built = model.build(ctx).unwrap();
            let batch = Batcher::for_model(&data, &model)
                .unwrap()
                .batch(&samples)
                .unwrap();
            let sgd = Optimizer::Sgd(Sgd {
                lr: 0.1,
                momentum: 0.0,
                weight_decay: 0.0,
            });
            let mut p = Program::build(ctx, built.graph, sgd, 11).unwrap();
            feed(ctx, &p, &built.nodes, &batch);
            let step = p.step(ctx, StepOptions::EVALUATE).unwrap();
            reports.push(step.losses.unwrap().wait(ctx).unwrap());
        }
        let (full, padded) = (&reports[0], &reports[1]);
        assert_eq!(full.labelled, vec![3, 4, 4], "{}", ctx.describe());
        assert_eq!(padded.labelled, full.labelled, "{}", ctx.describe());
        for (t, (a, b)) in full.losses.iter().zip(&padded.losses).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 + 1e-5 * a.abs(),
                "{}: task {t}: {a} vs {b}",
                ctx.describe()
            );
        }
    }
}

#[test]
fn synthetic_converts_with_tasks_at_their_columns() {
    let spec = SyntheticSpec::new(3, 6, 2, 10.0, 5);
    let s = Synthetic::generate(&spec, 9).unwrap();
    let data = Dataset::from_synthetic(&s).unwrap();
    assert_eq!(data.tasks().len(), 3);
    let specs: Vec<TaskSpec> = data
        .schema()
        .iter()
        .map(|t| TaskSpec::new(&t.name, t.kind, &[]))
        .collect();
    let batcher = Batcher::new(&data, &specs, 4).unwrap();
    let batch = batcher.batch(&[2, 3, 4, 5]).unwrap();
    let (x, y) = s.batch(2, 4);
    assert_eq!(batch.x, x);
    assert_eq!(batch.targets.unwrap(), y);
    assert_eq!((batch.labels, batch.masks), (None, None));
}

// ---- MultiMNIST, Fashion-MNIST ----

#[test]
fn multi_mnist_is_fixed_by_the_seed() {
    let images = tiny_images(7);
    let labels = [0u8, 1, 2, 3, 4, 5, 6];
    let spec = MultiMnistSpec {
        samples: 20,
        max_shift: 1,
        seed: 3,
    };
    let a = multi_mnist::build(&images, &labels, 10, spec).unwrap();
    assert_eq!(a, multi_mnist::build(&images, &labels, 10, spec).unwrap());
    let other = MultiMnistSpec { seed: 4, ..spec };
    assert_ne!(
        a.x(),
        multi_mnist::build(&images, &labels, 10, other).unwrap().x()
    );
    assert_eq!((a.rows(), a.features()), (20, 20));
    assert!(a.x().iter().all(|v| (0.0..=1.0).contains(v)));
    let Targets::Classes { ids: left, .. } = &a.task("left").unwrap().targets else {
        unreachable!()
    };
    assert_eq!(left[9], 2); // sample 9 puts source image 9 mod 7 up-left
    assert!(a.task("right").is_some());
    // Without shifts the canvas is the pixel-wise max of the two images.
    let flat = MultiMnistSpec {
        max_shift: 0,
        ..spec
    };
    let b = multi_mnist::build(&images, &labels, 10, flat).unwrap();
    let Targets::Classes { ids: right, .. } = &b.task("right").unwrap().targets else {
        unreachable!()
    };
    let (i, j) = (0, right[0] as usize);
    for p in 0..20 {
        let want = images.image(i)[p].max(images.image(j)[p]) as f32 / 255.0;
        assert_eq!(b.sample(0)[p], want);
    }
    let e = err_text(multi_mnist::build(&images, &labels[..3], 10, spec));
    assert_mentions(&e, &["3 labels for 7 images"]);
}

/// Loaded once for every test that needs it (≈30 MB of gzip).
fn fashion() -> &'static FashionMnist {
    static DATA: OnceLock<FashionMnist> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = std::path::Path::new(fashion_mnist::DEFAULT_DIR);
        fashion_mnist::load(dir).unwrap_or_else(|e| panic!("{e}"))
    })
}

#[test]
fn fashion_mnist_loads_both_parts_with_class_and_group() {
    let f = fashion();
    assert_eq!((f.train.rows(), f.test.rows()), (60_000, 10_000));
    assert_eq!(f.train.features(), 784);
    for part in [&f.train, &f.test] {
        let (lo, hi) = part
            .x()
            .iter()
            .fold((1f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert_eq!((lo, hi), (0.0, 1.0));
        let Targets::Classes { classes: 10, ids } = &part.task("class").unwrap().targets else {
            panic!("class is not a 10-class task")
        };
        let Targets::Classes {
            classes: 4,
            ids: groups,
        } = &part.task("group").unwrap().targets
        else {
            panic!("group is not a 4-class task")
        };
        let mut counts = [0usize; 10];
        for (&c, &g) in ids.iter().zip(groups) {
            counts[c as usize] += 1;
            assert_eq!(g, GROUP_OF_CLASS[c as usize]);
        }
        // Both parts are balanced: N / 10 per class.
        assert!(counts.iter().all(|&n| n == part.rows() / 10), "{counts:?}");
    }
}

#[test]
fn fashion_mnist_missing_files_say_what_to_install() {
    let e = err_text(fashion_mnist::load(&temp("no-such-dir")));
    assert_mentions(&e, &["train-images-idx3-ubyte.gz", "dataset-fashion-mnist"]);
}

#[test]
fn fashion_mnist_feeds_multi_mnist() {
    let f = fashion();
    let images = IdxImages {
        count: 100,
        height: 28,
        width: 28,
        pixels: f.test.x()[..100 * 784]
            .iter()
            .map(|&v| (v * 255.0).round() as u8)
            .collect(),
    };
    let Targets::Classes { ids, .. } = &f.test.task("class").unwrap().targets else {
        unreachable!()
    };
    let labels: Vec<u8> = ids[..100].iter().map(|&c| c as u8).collect();
    let spec = MultiMnistSpec {
        samples: 50,
        max_shift: 4,
        seed: 1,
    };
    let data = multi_mnist::build(&images, &labels, 10, spec).unwrap();
    assert_eq!((data.rows(), data.features()), (50, 784));
    assert_eq!(data.schema().len(), 2);
}

// ---- the config's data conventions (tasks, split files, paths, CSV
// features, target scales, tiny data) ----

/// `text` written as `name` in `dir` and loaded as a config file.
fn config_in(dir: &std::path::Path, name: &str, text: &str) -> Config {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// x [rows, 2], y.a F32 [rows] (regression), y.b I64 [rows] (3 classes),
/// and no header metadata: what PyTorch's `save_file` writes.
fn write_plain_safetensors(path: &std::path::Path, rows: usize, features: usize) {
    let x = f32_bytes(
        &(0..rows * features)
            .map(|i| i as f32 * 0.1)
            .collect::<Vec<_>>(),
    );
    let a = f32_bytes(&(0..rows).map(|i| i as f32).collect::<Vec<_>>());
    let b = i64_bytes(&(0..rows).map(|i| (i % 3) as i64).collect::<Vec<_>>());
    let tensors = [
        ("x", Dtype::F32, vec![rows, features], x),
        ("y.a", Dtype::F32, vec![rows], a),
        ("y.b", Dtype::I64, vec![rows], b),
    ];
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

const AB_TASKS: &str = "[[tasks]]\nname = \"a\"\nkind = \"regression\"\noutputs = 1\n\
                        [[tasks]]\nname = \"b\"\nkind = \"classification\"\nclasses = 3\n";

#[test]
fn a_safetensors_file_without_task_metadata_reads_the_config_tasks() {
    let dir = scratch_dir("data-plain-st");
    let file = dir.join("plain.safetensors");
    write_plain_safetensors(&file, 12, 2);
    let text = format!(
        "[model]\nwidths = [4]\n{AB_TASKS}[data]\nsource = \"safetensors\"\n\
         path = \"plain.safetensors\"\n[train]\nsteps = 2\nbatch = 4\n"
    );
    let mut c = config_in(&dir, "run.toml", &text);
    let (data, split) = c.split().unwrap();
    assert_eq!(
        data.schema(),
        vec![
            TaskSchema::new("a", TaskKind::Regression { outputs: 1 }),
            TaskSchema::new("b", TaskKind::Classification { classes: 3 }),
        ]
    );
    assert_eq!(
        split.train.rows() + split.validation.rows() + split.test.rows(),
        12
    );
    // And the binary trains on it.
    let (code, stderr) = crate::hostile::run_bounded(
        &[
            "train",
            "--config",
            dir.join("run.toml").to_str().unwrap(),
            "--quiet",
        ],
        300,
    );
    assert_eq!(code, Some(0), "{stderr}");

    // Without [[tasks]]: an error saying what to add, naming the targets.
    let text = "[data]\nsource = \"safetensors\"\npath = \"plain.safetensors\"\n";
    let e = err_text(config_in(&dir, "bare.toml", text).split());
    assert_mentions(&e, &["plain.safetensors", "[[tasks]]", "y.a, y.b"]);

    // A file whose metadata says otherwise: an error naming both.
    let listed = dir.join("listed.safetensors");
    st::write(
        &listed,
        &st::read(&file, Some(&data.schema())).unwrap(),
        Precision::F32,
    )
    .unwrap();
    let text = "[[tasks]]\nname = \"b\"\nkind = \"classification\"\nclasses = 4\n\
                [data]\nsource = \"safetensors\"\npath = \"listed.safetensors\"\n";
    let e = err_text(config_in(&dir, "other.toml", text).split());
    assert_mentions(
        &e,
        &[
            "listed.safetensors",
            "task 'b'",
            "classification with 4 classes",
            "task.1",
            "classification with 3 classes",
        ],
    );
    // The same tasks as the metadata: read (a subset is fine).
    let text = "[[tasks]]\nname = \"b\"\nkind = \"classification\"\nclasses = 3\n\
                [data]\nsource = \"safetensors\"\npath = \"listed.safetensors\"\n";
    let (data, _) = config_in(&dir, "same.toml", text).split().unwrap();
    assert_eq!(data.tasks().len(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn split_files_are_the_split_and_must_share_the_schema() {
    let dir = scratch_dir("data-split-files");
    write_plain_safetensors(&dir.join("train.safetensors"), 10, 2);
    write_plain_safetensors(&dir.join("val.safetensors"), 4, 2);
    write_plain_safetensors(&dir.join("test.safetensors"), 3, 2);
    write_plain_safetensors(&dir.join("wide.safetensors"), 3, 5);
    let base =
        format!("{AB_TASKS}[data]\nsource = \"safetensors\"\npath = \"train.safetensors\"\n");
    let text =
        format!("{base}validation_path = \"val.safetensors\"\ntest_path = \"test.safetensors\"\n");
    let mut c = config_in(&dir, "files.toml", &text);
    let (data, split) = c.split().unwrap();
    assert_eq!(
        (
            data.rows(),
            split.train.rows(),
            split.validation.rows(),
            split.test.rows()
        ),
        (10, 10, 4, 3)
    );
    assert!(split.validation.source().ends_with("val.safetensors"));
    // The files' rows, in order: nothing shuffled or cut.
    assert_eq!(
        split.test.x(),
        st::read(&dir.join("test.safetensors"), Some(&data.schema()))
            .unwrap()
            .x()
    );
    // One old entry point refuses rather than cut the training file.
    assert_mentions(
        &err_text(c.dataset()),
        &["validation_path", "Config::split"],
    );

    // Only a test file: validation is empty, with the same schema.
    let text = format!("{base}test_path = \"test.safetensors\"\n");
    let (_, split) = config_in(&dir, "test-only.toml", &text).split().unwrap();
    assert_eq!(
        (
            split.train.rows(),
            split.validation.rows(),
            split.test.rows()
        ),
        (10, 0, 3)
    );
    assert_eq!(split.validation.schema(), split.train.schema());

    // Another schema: an error naming the file.
    let text = format!("{base}test_path = \"wide.safetensors\"\n");
    let e = err_text(config_in(&dir, "wide.toml", &text).split());
    assert_mentions(
        &e,
        &[
            "wide.safetensors",
            "5 features",
            "train.safetensors",
            "has 2",
        ],
    );
    // Fractions set beside split files: an error naming the key.
    let text = format!("{base}test_path = \"test.safetensors\"\nvalidation = 0.2\n");
    std::fs::write(dir.join("both.toml"), text).unwrap();
    let e = err_text(Config::load(&dir.join("both.toml")));
    assert_mentions(&e, &["data.validation", "test_path"]);
    // Split files are for safetensors and csv only.
    let e = err_text(Config::from_toml(
        "[data]\nsource = \"synthetic\"\ntest_path = \"t.safetensors\"\n",
        "t.toml",
    ));
    assert_mentions(
        &e,
        &["data.test_path", "not a key of source = \"synthetic\""],
    );

    // CSV split files: a validation file without a target column.
    std::fs::write(dir.join("train.csv"), "x0,x1,a\n1,2,3\n4,5,6\n").unwrap();
    std::fs::write(dir.join("val.csv"), "x0,x1\n1,2\n").unwrap();
    let text = "[[tasks]]\nname = \"a\"\nkind = \"regression\"\noutputs = 1\n\
                [data]\nsource = \"csv\"\npath = \"train.csv\"\nvalidation_path = \"val.csv\"\n";
    let e = err_text(config_in(&dir, "csv.toml", text).split());
    assert_mentions(&e, &["val.csv", "no column 'a'"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn data_paths_are_stored_absolute_and_canonical() {
    let dir = scratch_dir("data-paths");
    std::fs::create_dir_all(dir.join("configs")).unwrap();
    write_plain_safetensors(&dir.join("d.safetensors"), 10, 2);
    let text = format!("{AB_TASKS}[data]\nsource = \"safetensors\"\npath = \"../d.safetensors\"\n");
    let c = config_in(&dir.join("configs"), "run.toml", &text);
    let stored = c.data.path.clone().unwrap();
    assert_eq!(
        stored,
        std::fs::canonicalize(dir.join("d.safetensors")).unwrap()
    );
    // A config given as text: relative to the working folder, made
    // absolute when the data is read.
    let mut c = Config::from_toml(
        &format!("{AB_TASKS}[data]\nsource = \"safetensors\"\npath = \"no-such.safetensors\"\n"),
        "text",
    )
    .unwrap();
    let e = err_text(c.split());
    let abs = std::env::current_dir().unwrap().join("no-such.safetensors");
    assert_mentions(&e, &[abs.to_str().unwrap()]);
    assert_eq!(c.data.path.unwrap(), abs);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The "test split (…)" table of a train or eval run's stdout.
fn test_table(stdout: &str) -> Vec<String> {
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("test split ("))
        .unwrap_or_else(|| panic!("no test table in:\n{stdout}"));
    lines[start..]
        .iter()
        .take_while(|l| l.starts_with("test split (") || l.starts_with("  "))
        .map(|l| l.to_string())
        .collect()
}

/// Runs the binary in `dir` (bounded), returning stdout; fails on error.
fn run_in(dir: &std::path::Path, args: &[&str]) -> String {
    let out = crate::common::run_timed(manytask().current_dir(dir).args(args), 300);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?} in {}:\n{stdout}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn a_checkpoint_scores_the_same_data_from_any_working_folder() {
    let dir = scratch_dir("data-two-folders");
    let (one, two) = (dir.join("one"), dir.join("two"));
    for d in [&one, &two] {
        std::fs::create_dir_all(d).unwrap();
    }
    write_plain_safetensors(&one.join("d.safetensors"), 24, 3);
    std::fs::write(
        one.join("run.toml"),
        format!(
            "[model]\nwidths = [4]\n{AB_TASKS}[data]\nsource = \"safetensors\"\n\
             path = \"d.safetensors\"\ntest = 0.25\n[train]\nsteps = 3\nbatch = 4\n"
        ),
    )
    .unwrap();
    // Trained from folder one with relative paths, and with --data.
    let train = run_in(
        &one,
        &[
            "train",
            "--config",
            "run.toml",
            "--save",
            "ck.safetensors",
            "--quiet",
        ],
    );
    let ck = one.join("ck.safetensors");
    let meta = manytask::checkpoint::metadata(&ck).unwrap();
    let stored = Config::from_json(&meta[manytask::checkpoint::CONFIG_KEY], "meta").unwrap();
    let path = stored.data.path.unwrap();
    assert!(
        path.is_absolute() && path == std::fs::canonicalize(&path).unwrap(),
        "{path:?}"
    );
    // Scored from folder two: the same table.
    let eval = run_in(&two, &["eval", "--checkpoint", ck.to_str().unwrap()]);
    assert_eq!(test_table(&eval), test_table(&train));

    // --data: a file whose metadata lists its tasks (no config here).
    let schema = [
        TaskSchema::new("a", TaskKind::Regression { outputs: 1 }),
        TaskSchema::new("b", TaskKind::Classification { classes: 3 }),
    ];
    let listed = st::read(&one.join("d.safetensors"), Some(&schema)).unwrap();
    st::write(&one.join("listed.safetensors"), &listed, Precision::F32).unwrap();
    let mut args = vec!["train", "--data", "listed.safetensors", "--widths", "4"];
    args.extend(["--steps", "2"]);
    args.extend(["--batch", "4", "--save", "ck2.safetensors", "--quiet"]);
    let train = run_in(&one, &args);
    let eval = run_in(
        &two,
        &[
            "eval",
            "--checkpoint",
            one.join("ck2.safetensors").to_str().unwrap(),
        ],
    );
    assert_eq!(test_table(&eval), test_table(&train));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn csv_default_features_leave_out_every_target_and_are_stored() {
    let dir = scratch_dir("data-csv-features");
    std::fs::write(
        dir.join("multi.csv"),
        "x0,price,x1,kind,label_color\n\
         1,10,2,0,1\n3,11,4,1,0\n5,12,6,2,1\n7,13,8,0,0\n9,14,10,1,1\n",
    )
    .unwrap();
    let price = "[[tasks]]\nname = \"price\"\nkind = \"regression\"\noutputs = 1\n";
    let kind = "[[tasks]]\nname = \"kind\"\nkind = \"classification\"\nclasses = 3\n";
    let data_keys =
        "[data]\nsource = \"csv\"\npath = \"multi.csv\"\nvalidation = 0.0\ntest = 0.0\n";

    // Every task's column is left out; a target-like column no task
    // reads is an error naming it.
    let mut c = config_in(&dir, "both.toml", &format!("{price}{kind}{data_keys}"));
    let e = err_text(c.dataset());
    assert_mentions(
        &e,
        &[
            "multi.csv",
            "column 5 ('label_color')",
            "data.features",
            "data.exclude",
        ],
    );
    let text = format!("{price}{kind}{data_keys}exclude = [\"label_color\"]\n");
    let mut c = config_in(&dir, "both.toml", &text);
    let data = c.dataset().unwrap();
    assert_eq!(data.features(), 2);
    assert_eq!(data.sample(0), &[1.0, 2.0]);
    // The list found is in the config, and survives --single-task.
    assert_eq!(
        c.data.features,
        Some(vec!["x0".to_string(), "x1".to_string()])
    );
    c.keep_only_task("price").unwrap();
    let mut again = Config::from_json(&c.to_json().unwrap(), "stored").unwrap();
    let (data, _) = again.split().unwrap();
    assert_eq!((data.features(), data.tasks().len()), (2, 1));

    // Label leakage: a target column listed as a feature.
    let text = format!("{price}{kind}{data_keys}features = [\"x0\", \"kind\"]\n");
    std::fs::write(dir.join("leak.toml"), text).unwrap();
    let e = err_text(Config::load(&dir.join("leak.toml")));
    assert_mentions(&e, &["data.features", "\"kind\"", "label leakage"]);
    // The reader refuses it too.
    let columns = CsvColumns {
        features: Some(vec!["x0".into(), "price".into()]),
        exclude: Vec::new(),
        tasks: vec![CsvTask::new(
            "price",
            TaskKind::Regression { outputs: 1 },
            &["price"],
        )],
    };
    let e = err_text(manytask::data::csv::read(&dir.join("multi.csv"), &columns));
    assert_mentions(&e, &["multi.csv", "'price'", "label leakage"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn target_scales_come_from_the_file_the_config_or_the_training_split() {
    let dir = scratch_dir("data-scales");
    // A file that stores its scale: read back.
    let scale = TargetScale {
        mean: 10.0,
        std: 2.5,
    };
    let data = small().with_target_scale("reg", scale).unwrap();
    let path = dir.join("scaled.safetensors");
    st::write(&path, &data, Precision::F32).unwrap();
    let back = st::read(&path, None).unwrap();
    assert_eq!(back.target_scale("reg"), Some(scale));
    assert_eq!(back.target_scale("digit"), None);
    assert_eq!(scale.error_to_original(0.5), 1.25);
    assert_eq!(scale.to_original(scale.to_stored(3.0)), 3.0);
    // Only regression tasks have one.
    assert_mentions(
        &err_text(small().with_target_scale("digit", scale)),
        &["digit", "regression"],
    );

    let base = "[data]\nsource = \"safetensors\"\npath = \"scaled.safetensors\"\n";
    // The config agrees with the file, or the run is refused naming both.
    let text = format!("{base}[data.target_scale]\nreg = [10.0, 2.5]\n");
    let (data, split) = config_in(&dir, "same.toml", &text).split().unwrap();
    assert_eq!(data.target_scale("reg"), Some(scale));
    assert_eq!(split.test.target_scale("reg"), Some(scale));
    let text = format!("{base}[data.target_scale]\nreg = [0.0, 1.0]\n");
    let e = err_text(config_in(&dir, "differ.toml", &text).split());
    assert_mentions(&e, &["task 'reg'", "mean 0, std 1", "mean 10, std 2.5"]);
    let e = err_text(Config::from_toml(
        &format!("{base}[data.target_scale]\nreg = [0.0, 0.0]\n"),
        "t",
    ));
    assert_mentions(&e, &["data.target_scale.reg", "std"]);

    // standardize_targets: the training split's mean and std, applied to
    // every split; the original values come back with the scale.
    let csv = dir.join("y.csv");
    let rows: String = (0..20)
        .map(|i| format!("{i},{}\n", 100.0 + 3.0 * i as f32))
        .collect();
    std::fs::write(&csv, format!("x,y\n{rows}")).unwrap();
    let text = "[[tasks]]\nname = \"y\"\nkind = \"regression\"\noutputs = 1\n\
                [data]\nsource = \"csv\"\npath = \"y.csv\"\nstandardize_targets = true\n\
                validation = 0.2\ntest = 0.2\n";
    let mut c = config_in(&dir, "std.toml", text);
    let (_, split) = c.split().unwrap();
    let ys = |d: &Dataset| match &d.task("y").unwrap().targets {
        Targets::Real { values, .. } => values.clone(),
        _ => unreachable!(),
    };
    let scale = split.train.target_scale("y").unwrap();
    let train = ys(&split.train);
    let mean = train.iter().sum::<f32>() / train.len() as f32;
    let var = train.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / train.len() as f32;
    assert!(
        mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
        "{mean} {var}"
    );
    assert_eq!(split.test.target_scale("y"), Some(scale));
    for (row, &v) in ys(&split.test).iter().enumerate() {
        let x = split.test.sample(row)[0];
        let want = 100.0 + 3.0 * x;
        assert!((scale.to_original(v) - want).abs() < 1e-3, "{v} → {want}");
    }
    // The same through the old entry point (what `train` cuts from it).
    let data = c.dataset().unwrap();
    let old = data.split(c.data.fractions(), c.train.seed).unwrap();
    assert_eq!(old, split);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn tiny_and_empty_data_are_valid_or_name_the_empty_training_split() {
    let dir = scratch_dir("data-tiny");
    let task = "[[tasks]]\nname = \"y\"\nkind = \"regression\"\noutputs = 1\n";
    // Header only: 0 samples read, the split says the training part is empty.
    std::fs::write(dir.join("head.csv"), "x,y\n").unwrap();
    let text = format!("{task}[data]\nsource = \"csv\"\npath = \"head.csv\"\n");
    let mut c = config_in(&dir, "head.toml", &text);
    assert_eq!(c.dataset().unwrap().rows(), 0);
    assert_mentions(
        &err_text(c.split()),
        &["head.csv", "training split", "0 samples"],
    );
    // An empty file: no header row.
    std::fs::write(dir.join("empty.csv"), "").unwrap();
    let text = format!("{task}[data]\nsource = \"csv\"\npath = \"empty.csv\"\n");
    assert_mentions(
        &err_text(config_in(&dir, "empty.toml", &text).split()),
        &["empty.csv", "header row"],
    );
    // One row: all of it trains.
    std::fs::write(dir.join("one.csv"), "x,y\n1,2\n").unwrap();
    let text = format!("{task}[data]\nsource = \"csv\"\npath = \"one.csv\"\n");
    let (_, split) = config_in(&dir, "one.toml", &text).split().unwrap();
    assert_eq!(
        (
            split.train.rows(),
            split.validation.rows(),
            split.test.rows()
        ),
        (1, 0, 0)
    );
    // Two rows, half for validation and test: the training part would be empty.
    std::fs::write(dir.join("two.csv"), "x,y\n1,2\n3,4\n").unwrap();
    let text = format!(
        "{task}[data]\nsource = \"csv\"\npath = \"two.csv\"\nvalidation = 0.5\ntest = 0.4\n"
    );
    let e = err_text(config_in(&dir, "two.toml", &text).split());
    assert_mentions(
        &e,
        &[
            "two.csv",
            "training split",
            "2 sample(s), 1 for validation and 1 for test",
        ],
    );

    // An IDX file of 0 images: a dataset of 0 samples, then the same error.
    let (ip, lp) = (dir.join("img.idx"), dir.join("lab.idx"));
    idx::write_images(&ip, &tiny_images(0)).unwrap();
    idx::write_labels(&lp, &[]).unwrap();
    assert_eq!(
        idx::read_classification(&ip, &lp, "c", 10).unwrap().rows(),
        0
    );
    let text = "[data]\nsource = \"idx\"\nimages = \"img.idx\"\nlabels = \"lab.idx\"\n";
    assert_mentions(
        &err_text(config_in(&dir, "idx.toml", text).split()),
        &["img.idx", "training split"],
    );
    let text = "[data]\nsource = \"multi_mnist\"\nimages = \"img.idx\"\nlabels = \"lab.idx\"\n";
    assert_mentions(
        &err_text(config_in(&dir, "mm.toml", text).split()),
        &["img.idx", "0 images"],
    );
    // x [0, 2] in safetensors.
    write_plain_safetensors(&dir.join("none.safetensors"), 0, 2);
    assert_eq!(
        st::read(
            &dir.join("none.safetensors"),
            Some(&[TaskSchema::new("a", TaskKind::Regression { outputs: 1 })])
        )
        .unwrap()
        .rows(),
        0
    );
    // data.samples = 1.
    let (_, split) = Config::from_toml(
        "[data]\nsamples = 1\ntasks = 2\ninputs = 3\noutputs = 2\n",
        "t",
    )
    .unwrap()
    .split()
    .unwrap();
    assert_eq!(split.train.rows(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}
