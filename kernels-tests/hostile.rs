//! Hostile input: every reader (data, config, checkpoint) refuses what is
//! not a regular file, bounds its reads by the file's size, refuses a
//! gzip stream with trailing bytes, never echoes a file's bytes in an
//! error, and answers a few hundred seeded mutations of valid files with
//! a dataset or an error, never a panic. Every call that could hang runs
//! under a deadline, so a regression fails the test instead of stalling
//! the suite.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use manytask::config::Config;
use manytask::data::csv::{CsvColumns, CsvTask};
use manytask::data::dataset::{Dataset, Targets, TaskData, TaskSchema};
use manytask::data::idx::{self, IdxImages};
use manytask::data::safetensors::{self as st, Precision};
use manytask::types::TaskKind;

use crate::common::{manytask, scratch_dir};

/// Runs `f` on its own thread and returns its result, failing the test
/// if it takes longer than `seconds` (a read without end, say). The
/// thread is left behind on failure; the test still fails at once.
fn bounded<T: Send + 'static>(
    what: &str,
    seconds: u64,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    receive
        .recv_timeout(Duration::from_secs(seconds))
        .unwrap_or_else(|_| panic!("{what}: no answer within {seconds} s (a hang?)"))
}

/// The error text of `r`, which must be an error.
fn err_text<T: std::fmt::Debug>(r: manytask::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "'{message}' does not mention '{p}'");
    }
}

/// Runs `cmd` to its end under a deadline, its output drained on
/// threads (a full pipe cannot stall it); a run past the deadline is
/// killed and fails the test.
pub(crate) fn run_output(cmd: &mut std::process::Command, seconds: u64) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran past {seconds} s (a hang?)");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs the binary with `args` under a deadline; returns (exit code,
/// stderr).
pub(crate) fn run_bounded(args: &[&str], seconds: u64) -> (Option<i32>, String) {
    let out = run_output(manytask().args(args), seconds);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A FIFO at `path` (via mkfifo(1)); `None` where there is no mkfifo.
fn fifo(path: &Path) -> Option<PathBuf> {
    let _ = std::fs::remove_file(path);
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| path.to_path_buf())
}

fn one_task() -> Vec<TaskSchema> {
    vec![TaskSchema::new("y", TaskKind::Regression { outputs: 1 })]
}

fn csv_columns() -> CsvColumns {
    CsvColumns {
        features: None,
        exclude: Vec::new(),
        tasks: vec![CsvTask::new(
            "y",
            TaskKind::Regression { outputs: 1 },
            &["y"],
        )],
    }
}

/// Every reader on `path`: (what, error text), each under a deadline.
fn every_reader(path: &Path) -> Vec<(&'static str, String)> {
    let p = path.to_path_buf();
    let mut out = Vec::new();
    let q = p.clone();
    out.push((
        "safetensors",
        bounded("safetensors", 20, move || {
            err_text(st::read(&q, Some(&one_task())))
        }),
    ));
    let q = p.clone();
    out.push((
        "csv",
        bounded("csv", 20, move || {
            err_text(manytask::data::csv::read(&q, &csv_columns()))
        }),
    ));
    let q = p.clone();
    out.push((
        "idx images",
        bounded("idx", 20, move || err_text(idx::read_images(&q))),
    ));
    let q = p.clone();
    out.push((
        "idx labels",
        bounded("idx", 20, move || err_text(idx::read_labels(&q))),
    ));
    let q = p.clone();
    out.push((
        "config",
        bounded("config", 20, move || err_text(Config::load(&q))),
    ));
    let q = p.clone();
    out.push((
        "checkpoint",
        bounded("checkpoint", 20, move || {
            err_text(manytask::checkpoint::metadata(&q))
        }),
    ));
    out
}

#[test]
fn devices_fifos_and_folders_are_refused_by_every_reader() {
    let dir = scratch_dir("hostile-special");
    let mut special = vec![
        (PathBuf::from("/dev/zero"), "character device"),
        (dir.clone(), "directory"),
    ];
    if let Some(f) = fifo(&dir.join("pipe")) {
        special.push((f, "FIFO"));
    }
    for (path, kind) in &special {
        for (reader, e) in every_reader(path) {
            assert!(
                e.contains(kind) && e.contains("not a regular file"),
                "{reader} on {}: {e}",
                path.display()
            );
            assert!(e.contains(&*path.display().to_string()), "{reader}: {e}");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_cli_refuses_dev_zero_as_data_checkpoint_and_config() {
    for args in [
        &["train", "--data", "/dev/zero", "--steps", "1"][..],
        &["eval", "--checkpoint", "/dev/zero"][..],
        &["train", "--config", "/dev/zero"][..],
    ] {
        let (code, stderr) = run_bounded(args, 120);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_mentions(&stderr, &["/dev/zero", "character device"]);
    }
}

#[test]
fn a_safetensors_header_length_past_the_end_is_refused_before_reading() {
    let dir = scratch_dir("hostile-header");
    let path = dir.join("long-header.safetensors");
    // 8-byte length 2^40, then 6 bytes: the length is checked first.
    let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}    ");
    std::fs::write(&path, &bytes).unwrap();
    let e = err_text(st::read(&path, Some(&one_task())));
    assert_mentions(&e, &["long-header.safetensors", "1099511627776", "only 6"]);
    let e = err_text(manytask::checkpoint::metadata(&path));
    assert_mentions(&e, &["long-header.safetensors", "only 6"]);
    // Under 8 bytes: no length at all.
    std::fs::write(&path, b"abc").unwrap();
    assert_mentions(
        &err_text(manytask::checkpoint::metadata(&path)),
        &["3 bytes", "too short"],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

// ---- gzip ----

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn tiny_images(count: usize) -> IdxImages {
    IdxImages {
        count,
        height: 3,
        width: 2,
        pixels: (0..count * 6).map(|i| (i * 41 % 256) as u8).collect(),
    }
}

#[test]
fn gzip_with_trailing_bytes_is_refused_and_members_are_read_in_turn() {
    let dir = scratch_dir("hostile-gzip");
    let raw_path = dir.join("raw.idx");
    idx::write_images(&raw_path, &tiny_images(4)).unwrap();
    let raw = std::fs::read(&raw_path).unwrap();
    let path = dir.join("images.gz");

    let mut trailing = gzip(&raw);
    trailing.extend_from_slice(b"garbage after the stream");
    std::fs::write(&path, &trailing).unwrap();
    let e = err_text(idx::read_images(&path));
    assert_mentions(&e, &["images.gz", "24 bytes of trailing data"]);
    // Trailing zeros (padding) too.
    let mut padded = gzip(&raw);
    padded.extend_from_slice(&[0; 512]);
    std::fs::write(&path, &padded).unwrap();
    assert_mentions(
        &err_text(idx::read_images(&path)),
        &["512 bytes of trailing data"],
    );

    // Two members, as `cat a.gz b.gz` makes them: one file's bytes.
    let (head, tail) = raw.split_at(10);
    let mut members = gzip(head);
    members.extend_from_slice(&gzip(tail));
    std::fs::write(&path, &members).unwrap();
    assert_eq!(idx::read_images(&path).unwrap(), tiny_images(4));

    // A valid stream holding more (or fewer) bytes than the header says.
    let mut long = raw.clone();
    long.push(7);
    std::fs::write(&path, gzip(&long)).unwrap();
    assert_mentions(
        &err_text(idx::read_images(&path)),
        &["too long", "need 24", "found 25"],
    );
    std::fs::write(&path, gzip(&raw[..raw.len() - 1])).unwrap();
    assert_mentions(
        &err_text(idx::read_images(&path)),
        &["truncated", "found 23"],
    );

    // A header asking for more than the gzip file could ever hold is
    // refused before anything is allocated.
    let mut huge = idx::IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [60_000u32, 60_000, 60_000] {
        huge.extend_from_slice(&d.to_be_bytes());
    }
    std::fs::write(&path, gzip(&huge)).unwrap();
    assert_mentions(
        &err_text(idx::read_images(&path)),
        &["more than this gzip file can hold"],
    );
    // Raw: the header is checked against the file's size.
    std::fs::write(&path, &huge).unwrap();
    assert_mentions(
        &err_text(idx::read_images(&path)),
        &["truncated", "found 0"],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A small dataset every format can hold (regression task "y").
fn tiny_dataset(rows: usize) -> Dataset {
    let x = (0..rows * 2).map(|i| i as f32 * 0.5).collect();
    let y = (0..rows).map(|i| i as f32).collect();
    Dataset::new(
        "tiny",
        rows,
        2,
        x,
        vec![TaskData::new(
            "y",
            Targets::Real {
                outputs: 1,
                values: y,
            },
            None,
        )],
    )
    .unwrap()
}

#[test]
fn a_safetensors_dataset_file_reads_back_through_the_bounded_reader() {
    let dir = scratch_dir("hostile-round");
    let path = dir.join("d.safetensors");
    st::write(&path, &tiny_dataset(3), Precision::F32).unwrap();
    let back = st::read(&path, None).unwrap();
    assert_eq!(back.x(), tiny_dataset(3).x());
    std::fs::remove_dir_all(dir).unwrap();
}
