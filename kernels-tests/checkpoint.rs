//! Checkpoints: PyTorch-layout tensors with the documented names, round
//! trips of parameters and optimiser state, atomic saves, and clear
//! errors for corrupt files and checkpoints of other models.

use std::path::PathBuf;

use manytask::arch::{ModelSpec, Sharing, StitchOptions, TaskKind, TaskSpec};
use manytask::checkpoint::{self, Restore};
use manytask::gpu::GpuContext;
use manytask::graph::{Optimizer, Program, StepOptions};
use manytask::types::Activation;
use manytask::types::AdamW;

use crate::common::{contexts, randomize_inputs};

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("manytask-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn spec(sharing: Sharing) -> ModelSpec {
    ModelSpec {
        init: manytask::types::WeightInit::Glorot,
        rows: 5,
        inputs: 4,
        activation: Activation::Relu,
        sharing,
        tasks: vec![
            TaskSpec::new("digit", TaskKind::Regression { outputs: 3 }, &[6]),
            TaskSpec::new("pose", TaskKind::Regression { outputs: 2 }, &[6]),
        ],
    }
}

fn program(ctx: &GpuContext, s: &ModelSpec, seed: u64) -> (Program, Vec<manytask::arch::Piece>) {
    let m = s.build(ctx).unwrap();
    let (x, t) = (m.nodes.x, m.nodes.targets.unwrap());
    let mut p = Program::build(ctx, m.graph, Optimizer::AdamW(AdamW::default()), seed).unwrap();
    randomize_inputs(ctx, &p, &[x, t], 3);
    for _ in 0..3 {
        p.step(ctx, StepOptions::TRAIN).unwrap();
    }
    (p, m.nodes.pieces)
}

fn hard() -> Sharing {
    Sharing::Hard { trunk: vec![7] }
}

#[test]
fn checkpoint_holds_pytorch_layout_under_documented_names() {
    let ctx = &contexts()[0];
    let s = spec(hard());
    let (p, pieces) = program(ctx, &s, 1);
    let path = dir().join("layout.safetensors");
    let meta = [("config".to_string(), "{\"model\":\"hard\"}".to_string())];
    checkpoint::save(ctx, &p, &pieces, &meta, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let shape = |n: &str| file.tensor(n).unwrap().shape().to_vec();
    assert_eq!(shape("trunk.0.weight"), vec![7, 4]);
    assert_eq!(shape("trunk.0.bias"), vec![7]);
    assert_eq!(shape("heads.digit.0.weight"), vec![6, 7]);
    assert_eq!(shape("heads.pose.1.weight"), vec![2, 6]);
    assert_eq!(shape("heads.pose.1.bias"), vec![2]);
    // W [out, in] is the transpose of the arena's [in, out].
    let arena = p.params().values.to_f32_vec(ctx).unwrap();
    let e = p
        .params()
        .layout
        .entries()
        .iter()
        .find(|e| e.name == "trunk.0.weight")
        .unwrap()
        .clone();
    let t = file.tensor("trunk.0.weight").unwrap();
    let w: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    for o in 0..7 {
        for i in 0..4 {
            assert_eq!(w[o * 4 + i], arena[e.offset + i * 7 + o]);
        }
    }
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let m = header.metadata().clone().unwrap();
    assert_eq!(m["config"], "{\"model\":\"hard\"}");
    assert!(m.contains_key("manytask.version"));
}

#[test]
fn resume_restores_parameters_optimiser_state_and_step_exactly() {
    for ctx in contexts() {
        for sharing in [
            hard(),
            Sharing::CrossStitch {
                columns: vec![5],
                stitch_after: vec![0],
                stitch: StitchOptions::default(),
            },
        ] {
            let s = spec(sharing);
            let (mut a, pieces) = program(ctx, &s, 1);
            let path = dir().join("resume.safetensors");
            checkpoint::save(ctx, &a, &pieces, &[], &path).unwrap();
            // A fresh program from another seed, resumed, then both step.
            let (mut b, _) = program(ctx, &s, 2);
            checkpoint::load(ctx, &mut b, &pieces, &path, Restore::Everything).unwrap();
            assert_eq!(b.steps(), a.steps());
            a.step(ctx, StepOptions::TRAIN).unwrap();
            b.step(ctx, StepOptions::TRAIN).unwrap();
            assert_eq!(
                a.params().values.to_f32_vec(ctx).unwrap(),
                b.params().values.to_f32_vec(ctx).unwrap()
            );
        }
    }
}

#[test]
fn bad_checkpoints_are_clear_errors_and_leave_the_model_untouched() {
    let ctx = &contexts()[0];
    let s = spec(hard());
    let (p, pieces) = program(ctx, &s, 1);
    let d = dir();
    let good = d.join("good.safetensors");
    checkpoint::save(ctx, &p, &pieces, &[], &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let (mut q, qp) = program(ctx, &s, 5);
    let before = q.params().values.to_f32_vec(ctx).unwrap();
    let truncated = d.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = d.join("garbage.safetensors");
    std::fs::write(&garbage, b"not a checkpoint at all").unwrap();
    for (path, want) in [
        (&truncated, "corrupt or truncated"),
        (&garbage, "corrupt or truncated"),
        (&d.join("missing.safetensors"), "reading"),
    ] {
        let e = checkpoint::load(ctx, &mut q, &qp, path, Restore::Parameters).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
    }
    // A checkpoint of another model shape.
    let other = spec(Sharing::Hard { trunk: vec![9] });
    let (mut r, rp) = program(ctx, &other, 1);
    let e = checkpoint::load(ctx, &mut r, &rp, &good, Restore::Parameters).unwrap_err();
    assert!(e.to_string().contains("different model"), "{e}");
    assert_eq!(q.params().values.to_f32_vec(ctx).unwrap(), before);
}

#[test]
fn a_failed_save_keeps_the_previous_checkpoint() {
    let ctx = &contexts()[0];
    let s = spec(hard());
    let (p, pieces) = program(ctx, &s, 1);
    let d = dir().join("keep");
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("model.safetensors");
    checkpoint::save(ctx, &p, &pieces, &[], &path).unwrap();
    let before = std::fs::read(&path).unwrap();
    // The temporary file's name is taken by a directory: the write fails
    // before the rename, and the old checkpoint is still whole.
    let blocker = d.join(format!(".model.safetensors.tmp-{}", std::process::id()));
    std::fs::create_dir_all(&blocker).unwrap();
    let e = checkpoint::save(ctx, &p, &pieces, &[], &path).unwrap_err();
    assert!(e.to_string().contains("writing"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    std::fs::remove_dir(&blocker).unwrap();
}

#[test]
fn a_checkpoint_file_is_the_same_bytes_every_save_with_its_metadata_sorted() {
    let ctx = &contexts()[0];
    let s = spec(hard());
    let (p, pieces) = program(ctx, &s, 1);
    let d = dir();
    // Many keys: a map in random order would show.
    let meta: Vec<(String, String)> = (0..12)
        .map(|i| (format!("key{}", (i * 7) % 12), format!("value \"{i}\"")))
        .collect();
    let (a, b) = (d.join("same-a.safetensors"), d.join("same-b.safetensors"));
    checkpoint::save(ctx, &p, &pieces, &meta, &a).unwrap();
    checkpoint::save(ctx, &p, &pieces, &meta, &b).unwrap();
    let bytes = std::fs::read(&a).unwrap();
    assert!(bytes == std::fs::read(&b).unwrap(), "two saves differ");
    // The header's metadata keys are in order, and the file reads back.
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0, "the header is padded to 8 bytes");
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let text = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let keys: Vec<&str> = text
        .split("\"__metadata__\":{")
        .nth(1)
        .unwrap()
        .split('}')
        .next()
        .unwrap()
        .split("\",\"")
        .map(|kv| kv.trim_start_matches('"').split('"').next().unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "{text}");
    assert_eq!(header["__metadata__"]["key3"], "value \"9\"");
    let m = checkpoint::metadata(&a).unwrap();
    assert_eq!(m.len(), 14, "12 keys, the version and the arena layout");
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.tensor("trunk.0.weight").unwrap().shape(), &[7, 4]);
    let (mut q, qp) = program(ctx, &s, 2);
    checkpoint::load(ctx, &mut q, &qp, &a, Restore::Everything).unwrap();
    assert_eq!(
        q.params().values.to_f32_vec(ctx).unwrap(),
        p.params().values.to_f32_vec(ctx).unwrap()
    );
}
