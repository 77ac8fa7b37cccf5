//! The defaults a PyTorch user assumes, end to end through the CLI: a
//! hard-sharing model trained with plain SGD (no momentum unless asked),
//! MSE with `reduction="mean"`, the sum of the task losses, the short last
//! batch kept, on a safetensors file with no task metadata (the tasks come
//! from `[[tasks]]`), from given initial weights — against a float64
//! reference written here the way a PyTorch loop computes it.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::common::{manytask, run_timed, scratch_dir};

const D: usize = 5; // features
const H: usize = 4; // trunk width
const TASKS: [(&str, usize); 2] = [("a", 2), ("b", 1)]; // (name, outputs)
const TRAIN_ROWS: usize = 23; // batch 10: 10 + 10 + 3 (the short last batch)
const BATCH: usize = 10;
const EPOCHS: usize = 2;
const LR: f64 = 0.1;

/// Deterministic values in [-1, 1).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A safetensors file of f32 tensors and no metadata at all.
fn write_tensors(path: &Path, tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>) {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, (shape, v))| (k.clone(), shape.clone(), bytes(v)))
        .collect();
    let views: Vec<(String, TensorView)> = raw
        .iter()
        .map(|(k, shape, b)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// x [rows, D] and y.<task> [rows, outputs] for rows of one split.
fn dataset(seed: u64, rows: usize) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut t = BTreeMap::new();
    t.insert("x".to_string(), (vec![rows, D], values(seed, rows * D)));
    for (i, (name, outputs)) in TASKS.iter().enumerate() {
        let y = values(seed + 10 + i as u64, rows * outputs);
        t.insert(format!("y.{name}"), (vec![rows, *outputs], y));
    }
    t
}

/// The model's parameters in PyTorch layout: weight [out, in], bias [out].
fn initial_weights() -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let scale = |v: Vec<f32>, s: f32| v.into_iter().map(|x| x * s).collect::<Vec<_>>();
    let mut t = BTreeMap::new();
    t.insert(
        "trunk.0.weight".into(),
        (vec![H, D], scale(values(101, H * D), 0.8)),
    );
    t.insert("trunk.0.bias".into(), (vec![H], scale(values(102, H), 0.3)));
    for (i, (name, outputs)) in TASKS.iter().enumerate() {
        let seed = 200 + 10 * i as u64;
        t.insert(
            format!("heads.{name}.0.weight"),
            (vec![*outputs, H], scale(values(seed, outputs * H), 0.7)),
        );
        t.insert(
            format!("heads.{name}.0.bias"),
            (vec![*outputs], scale(values(seed + 1, *outputs), 0.2)),
        );
    }
    t
}

/// One PyTorch-style SGD step on rows [lo, hi): loss = Σ_t MSELoss(mean),
/// θ -= lr · ∂loss/∂θ. Parameters in f64, PyTorch layout.
fn reference_step(
    p: &mut BTreeMap<String, Vec<f64>>,
    x: &[f32],
    ys: &[Vec<f32>],
    lo: usize,
    hi: usize,
) {
    let n = hi - lo;
    let w0 = p["trunk.0.weight"].clone();
    let b0 = p["trunk.0.bias"].clone();
    // Forward: h = tanh(x W0ᵀ + b0), [n, H].
    let mut h = vec![0f64; n * H];
    for r in 0..n {
        for j in 0..H {
            let mut z = b0[j];
            for k in 0..D {
                z += x[(lo + r) * D + k] as f64 * w0[j * D + k];
            }
            h[r * H + j] = z.tanh();
        }
    }
    let mut dh = vec![0f64; n * H];
    for (t, (name, outputs)) in TASKS.iter().enumerate() {
        let (wk, bk) = (
            format!("heads.{name}.0.weight"),
            format!("heads.{name}.0.bias"),
        );
        let (w, b) = (p[&wk].clone(), p[&bk].clone());
        let mut dw = vec![0f64; outputs * H];
        let mut db = vec![0f64; *outputs];
        // mean over the batch's rows × outputs: d/dŷ = 2(ŷ − y)/(n·outputs).
        let denom = (n * outputs) as f64;
        for r in 0..n {
            for o in 0..*outputs {
                let mut yhat = b[o];
                for j in 0..H {
                    yhat += h[r * H + j] * w[o * H + j];
                }
                let g = 2.0 * (yhat - ys[t][(lo + r) * outputs + o] as f64) / denom;
                db[o] += g;
                for j in 0..H {
                    dw[o * H + j] += g * h[r * H + j];
                    dh[r * H + j] += g * w[o * H + j];
                }
            }
        }
        for (v, g) in p.get_mut(&wk).unwrap().iter_mut().zip(&dw) {
            *v -= LR * g;
        }
        for (v, g) in p.get_mut(&bk).unwrap().iter_mut().zip(&db) {
            *v -= LR * g;
        }
    }
    let mut dw0 = vec![0f64; H * D];
    let mut db0 = vec![0f64; H];
    for r in 0..n {
        for j in 0..H {
            let dz = dh[r * H + j] * (1.0 - h[r * H + j] * h[r * H + j]);
            db0[j] += dz;
            for k in 0..D {
                dw0[j * D + k] += dz * x[(lo + r) * D + k] as f64;
            }
        }
    }
    for (v, g) in p.get_mut("trunk.0.weight").unwrap().iter_mut().zip(&dw0) {
        *v -= LR * g;
    }
    for (v, g) in p.get_mut("trunk.0.bias").unwrap().iter_mut().zip(&db0) {
        *v -= LR * g;
    }
}

#[test]
fn plain_sgd_mean_mse_short_last_batch_matches_a_float64_pytorch_loop() {
    let dir = scratch_dir("pytorch-conventions");
    let train = dataset(1, TRAIN_ROWS);
    write_tensors(&dir.join("train.safetensors"), &train);
    write_tensors(&dir.join("validation.safetensors"), &dataset(2, 4));
    write_tensors(&dir.join("test.safetensors"), &dataset(3, 4));
    let init = initial_weights();
    write_tensors(&dir.join("init.safetensors"), &init);
    let tasks: String = TASKS
        .iter()
        .map(|(name, outputs)| {
            format!("[[tasks]]\nname = \"{name}\"\nkind = \"regression\"\noutputs = {outputs}\n\n")
        })
        .collect();
    // Every default under test is left at its default: reduction (mean),
    // momentum (none), drop_last (false), task weights (1 each).
    let config = format!(
        "[model]\nkind = \"hard\"\nwidths = [{H}]\nactivation = \"tanh\"\n\n{tasks}\
         [data]\nsource = \"safetensors\"\npath = \"train.safetensors\"\n\
         validation_path = \"validation.safetensors\"\ntest_path = \"test.safetensors\"\n\n\
         [train]\nepochs = {EPOCHS}\nbatch = {BATCH}\noptimizer = \"sgd\"\nlr = {LR}\nshuffle = false\n"
    );
    std::fs::write(dir.join("run.toml"), config).unwrap();
    let out = run_timed(
        manytask()
            .current_dir(&dir)
            .args([
                "train",
                "--config",
                "run.toml",
                "--init",
                "init.safetensors",
            ])
            .args(["--save", "trained.safetensors", "--quiet"]),
        300,
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The reference: epochs over the file order, batches 10, 10, 3.
    let mut p: BTreeMap<String, Vec<f64>> = init
        .iter()
        .map(|(k, (_, v))| (k.clone(), v.iter().map(|&x| x as f64).collect()))
        .collect();
    let x = &train["x"].1;
    let ys: Vec<Vec<f32>> = TASKS
        .iter()
        .map(|(n, _)| train[&format!("y.{n}")].1.clone())
        .collect();
    let mut steps = 0;
    for _ in 0..EPOCHS {
        let mut lo = 0;
        while lo < TRAIN_ROWS {
            let hi = (lo + BATCH).min(TRAIN_ROWS);
            reference_step(&mut p, x, &ys, lo, hi);
            lo = hi;
            steps += 1;
        }
    }
    assert_eq!(steps, 6, "two epochs of 10 + 10 + 3 rows");

    let saved = std::fs::read(dir.join("trained.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&saved).unwrap();
    let mut worst = 0f64;
    for (name, want) in &p {
        let view = file
            .tensor(name)
            .unwrap_or_else(|e| panic!("checkpoint lacks {name}: {e}"));
        let got: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(got.len(), want.len(), "{name}");
        let moved: f64 = want
            .iter()
            .zip(&init[name].1)
            .map(|(w, i)| (w - *i as f64).abs())
            .fold(0.0, f64::max);
        assert!(
            moved > 1e-3,
            "{name} barely moved ({moved}): the test would not see a wrong step"
        );
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let rel = (*g as f64 - w).abs() / w.abs().max(1e-2);
            worst = worst.max(rel);
            assert!(
                rel < 1e-4,
                "{name}[{i}]: manytask {g}, float64 reference {w} (relative {rel:.2e})"
            );
        }
    }
    eprintln!("worst relative difference to the float64 reference: {worst:.2e}");
    std::fs::remove_dir_all(&dir).ok();
}
