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

/// Runs the binary with `args` under a deadline; returns (exit code,
/// stderr).
pub(crate) fn run_bounded(args: &[&str], seconds: u64) -> (Option<i32>, String) {
    let out = crate::common::run_timed(manytask().args(args), seconds);
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

// ---- errors never echo a file's bytes ----

/// A file that is not data: its first line must never reach an error.
const SECRET: &str = "root:x:0:0:SECRET-FIRST-LINE:/root:/bin/bash\nSECRET-SECOND,line\n";

fn assert_no_echo(what: &str, e: &str, file: &Path) {
    assert!(
        !e.contains("SECRET") && !e.contains("root:x") && !e.contains("/bin/bash"),
        "{what} quotes the file: {e}"
    );
    assert!(
        e.contains(&*file.display().to_string()),
        "{what} does not name the file: {e}"
    );
}

#[test]
fn errors_name_the_file_and_the_problem_never_its_bytes() {
    let dir = scratch_dir("hostile-echo");
    let secret = dir.join("passwd");
    std::fs::write(&secret, SECRET).unwrap();
    let task = "[[tasks]]\nname = \"y\"\nkind = \"regression\"\noutputs = 1\n";
    let target = secret.display().to_string();
    for source in ["csv", "safetensors"] {
        let text = format!("{task}[data]\nsource = \"{source}\"\npath = {target:?}\n");
        let e = err_text(Config::from_toml(&text, "t.toml").unwrap().split());
        assert_no_echo(source, &e, &secret);
    }
    let text = format!("[data]\nsource = \"idx\"\nimages = {target:?}\nlabels = {target:?}\n");
    let e = err_text(Config::from_toml(&text, "t.toml").unwrap().split());
    assert_no_echo("idx", &e, &secret);
    assert_mentions(&e, &["not an IDX file"]);
    for (reader, e) in every_reader(&secret) {
        assert_no_echo(reader, &e, &secret);
    }
    // A TOML error gives line and column, not the line.
    let e = err_text(Config::load(&secret));
    assert_mentions(&e, &["line 1, column"]);
    let later = dir.join("later.toml");
    std::fs::write(&later, format!("[train]\nsteps = 3\n{SECRET}")).unwrap();
    let e = err_text(Config::load(&later));
    assert_no_echo("toml", &e, &later);
    assert_mentions(&e, &["line 3, column"]);

    // CSV cells and headers the config did not name are not shown.
    let csv = dir.join("cells.csv");
    std::fs::write(&csv, "a,SECRET-HEADER,y\n1,2,3\n1,SECRET-CELL,3\n").unwrap();
    let columns = CsvColumns {
        features: None,
        exclude: Vec::new(),
        tasks: csv_columns().tasks,
    };
    let e = err_text(manytask::data::csv::read(&csv, &columns));
    assert_no_echo("csv cell", &e, &csv);
    assert_mentions(&e, &["line 3, column 2", "not a number"]);

    // A safetensors header whose strings are the secret: a dtype the
    // format does not know, and tensor names.
    let st_path = dir.join("strings.safetensors");
    let header = r#"{"x":{"dtype":"SECRET-DTYPE","shape":[1],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0; 4]);
    std::fs::write(&st_path, &bytes).unwrap();
    let e = err_text(st::read(&st_path, Some(&one_task())));
    assert_no_echo("safetensors dtype", &e, &st_path);
    assert_mentions(&e, &["not a valid safetensors file", "line 1, column"]);
    assert_no_echo(
        "checkpoint dtype",
        &err_text(manytask::checkpoint::metadata(&st_path)),
        &st_path,
    );
    let views = [(
        "SECRET:/root/name",
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &[0u8; 4]).unwrap(),
    )];
    safetensors::serialize_to_file(views, None, &st_path).unwrap();
    let e = err_text(st::read(&st_path, Some(&one_task())));
    assert_no_echo("tensor names", &e, &st_path);
    assert_mentions(&e, &["tensor 'x' is missing", "unusual name"]);
    std::fs::remove_dir_all(dir).unwrap();
}

// ---- mutations ----

/// What became of the mutations of one kind of file.
#[derive(Default)]
struct Tally {
    valid: usize,
    errors: std::collections::BTreeMap<String, usize>,
    /// The first message of each kind, to show what the errors say.
    examples: std::collections::BTreeMap<String, String>,
    panics: Vec<String>,
}

impl Tally {
    fn record(&mut self, what: &str, result: std::thread::Result<Result<(), String>>) {
        match result {
            Ok(Ok(())) => self.valid += 1,
            Ok(Err(e)) => {
                let kind = error_kind(&e);
                *self.errors.entry(kind.clone()).or_default() += 1;
                self.examples.entry(kind).or_insert(e);
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.panics.push(format!("{what}: panicked: {message}"));
            }
        }
    }

    fn total(&self) -> usize {
        self.valid + self.errors.values().sum::<usize>() + self.panics.len()
    }
}

/// A coarse kind of error, for the counts.
fn error_kind(e: &str) -> String {
    const KINDS: &[&str] = &[
        "trailing data",
        "gzip stream is corrupt",
        "header length",
        "not a valid safetensors file",
        "not a safetensors file",
        "magic",
        "not an IDX file",
        "truncated",
        "too long",
        "more than this gzip file",
        "too short",
        "UTF-8",
        "the file's metadata",
        "overflow",
        "is missing",
        "no tensor",
        "different model",
        "different parameter layout",
        "not a number",
        "not an integer",
        "class id",
        "binary label",
        "fields, but the header",
        "no column",
        "same header name",
        "empty",
        "metadata key",
        "non-finite",
        "holds",
        "shape",
        "expected",
    ];
    KINDS
        .iter()
        .find(|k| e.contains(*k))
        .map_or("other", |k| k)
        .to_string()
}

/// One seeded mutation of `bytes`: a description and the mutated bytes.
/// `length_at` is where a length or dimension field starts (safetensors:
/// 0, 8 bytes; IDX: 4, 4 bytes each), if the format has one.
fn mutate(seed: u64, bytes: &[u8], length_at: Option<(usize, usize)>) -> (String, Vec<u8>) {
    let mut rng = manytask::util::rng::Rng::new(seed);
    let mut draw = |n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    let mut out = bytes.to_vec();
    let kind = draw(6);
    let text = match kind {
        0 => {
            let flips = 1 + draw(4);
            for _ in 0..flips {
                let i = draw(out.len());
                out[i] ^= 1 + draw(255) as u8;
            }
            format!("{flips} byte flip(s)")
        }
        1 => {
            let n = draw(out.len());
            out.truncate(n);
            format!("truncated to {n} bytes")
        }
        2 => {
            let (at, n) = (draw(out.len() + 1), 1 + draw(16));
            let extra: Vec<u8> = (0..n).map(|_| draw(256) as u8).collect();
            out.splice(at..at, extra);
            format!("{n} bytes inserted at {at}")
        }
        3 => {
            let at = draw(out.len());
            let n = 1 + draw(16.min(out.len() - at));
            out.drain(at..at + n);
            format!("{n} bytes deleted at {at}")
        }
        4 => match length_at {
            Some((start, width)) if out.len() >= start + width => {
                let field = start + width * draw(if start == 0 { 1 } else { 3 });
                let field = field.min(out.len() - width);
                let mut value = [0u8; 8];
                value[..width].copy_from_slice(&out[field..field + width]);
                let old = if width == 8 {
                    u64::from_le_bytes(value)
                } else {
                    u32::from_be_bytes(value[..4].try_into().unwrap()) as u64
                };
                let new = match draw(4) {
                    0 => old.wrapping_add(1 + draw(8) as u64),
                    1 => old.wrapping_sub(1 + draw(8) as u64),
                    2 => u64::MAX >> draw(40),
                    _ => 0,
                };
                if width == 8 {
                    out[field..field + 8].copy_from_slice(&new.to_le_bytes());
                } else {
                    out[field..field + 4].copy_from_slice(&(new as u32).to_be_bytes());
                }
                format!("length field at {field}: {old} -> {new}")
            }
            _ => {
                let i = draw(out.len());
                out[i] = b"\n,\"0-e."[draw(7)];
                format!("byte {i} replaced by a separator")
            }
        },
        _ => {
            // A digit changed: shapes, offsets, dimensions, cells.
            let digits: Vec<usize> = (0..out.len())
                .filter(|&i| out[i].is_ascii_digit())
                .collect();
            if digits.is_empty() {
                out.push(b'9');
                "a digit appended".into()
            } else {
                let i = digits[draw(digits.len())];
                out[i] = b'0' + draw(10) as u8;
                format!("digit at {i} set to {}", out[i] as char)
            }
        }
    };
    (format!("seed {seed}, {text}"), out)
}

fn small_dataset() -> Dataset {
    let n = 6;
    let mask = (0..n).map(|i| i != 3).collect();
    Dataset::new(
        "m",
        n,
        3,
        (0..n * 3).map(|i| i as f32 * 0.25 - 1.0).collect(),
        vec![
            TaskData::new(
                "c",
                Targets::Classes {
                    classes: 4,
                    ids: (0..n).map(|i| (i % 4) as u32).collect(),
                },
                Some(mask),
            ),
            TaskData::new(
                "y",
                Targets::Real {
                    outputs: 2,
                    values: (0..n * 2).map(|i| i as f32).collect(),
                },
                None,
            ),
        ],
    )
    .unwrap()
    .with_target_scale(
        "y",
        manytask::data::TargetScale {
            mean: 1.5,
            std: 2.0,
        },
    )
    .unwrap()
}

/// `count` mutations of `original` written to `path`, each read by
/// `read` under `catch_unwind`.
fn fuzz(
    name: &str,
    original: &[u8],
    length_at: Option<(usize, usize)>,
    path: &Path,
    count: u64,
    read: &mut dyn FnMut(&Path) -> Result<(), String>,
) -> Tally {
    let mut tally = Tally::default();
    for seed in 0..count {
        let (what, bytes) = mutate(seed, original, length_at);
        std::fs::write(path, &bytes).unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(path)));
        tally.record(&format!("{name}, {what}"), result);
    }
    tally
}

fn as_unit<T>(r: manytask::Result<T>) -> Result<(), String> {
    r.map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn seeded_mutations_of_valid_files_give_data_or_errors_never_panics() {
    let tallies = bounded("mutations", 120, || {
        let dir = scratch_dir("hostile-mutations");
        let mut tallies: Vec<(&str, Tally)> = Vec::new();
        // safetensors: with its metadata, and with the tasks given.
        let path = dir.join("d.safetensors");
        st::write(&path, &small_dataset(), Precision::F32).unwrap();
        let original = std::fs::read(&path).unwrap();
        let schema = small_dataset().schema();
        tallies.push((
            "safetensors",
            fuzz(
                "safetensors",
                &original,
                Some((0, 8)),
                &path,
                150,
                &mut |p| {
                    as_unit(st::read(p, None))?;
                    as_unit(st::read(p, Some(&schema)))
                },
            ),
        ));
        // IDX images and labels, raw and gzipped.
        let images = dir.join("images.idx");
        idx::write_images(&images, &tiny_images(5)).unwrap();
        let raw = std::fs::read(&images).unwrap();
        tallies.push((
            "idx images",
            fuzz("idx", &raw, Some((4, 4)), &images, 100, &mut |p| {
                as_unit(idx::read_images(p))
            }),
        ));
        let labels = dir.join("labels.idx");
        idx::write_labels(&labels, &[0, 1, 2, 3, 4]).unwrap();
        let raw_labels = std::fs::read(&labels).unwrap();
        tallies.push((
            "idx labels",
            fuzz(
                "idx labels",
                &raw_labels,
                Some((4, 4)),
                &labels,
                50,
                &mut |p| as_unit(idx::read_labels(p)),
            ),
        ));
        tallies.push((
            "idx gzip",
            fuzz("idx gzip", &gzip(&raw), None, &images, 100, &mut |p| {
                as_unit(idx::read_images(p))
            }),
        ));
        // The content mutated, then gzipped: the length fields again.
        let mut inner = Tally::default();
        for seed in 0..50 {
            let (what, bytes) = mutate(1000 + seed, &raw, Some((4, 4)));
            std::fs::write(&images, gzip(&bytes)).unwrap();
            let result = std::panic::catch_unwind(|| as_unit(idx::read_images(&images)));
            inner.record(&format!("idx gzip of mutated content, {what}"), result);
        }
        tallies.push(("idx gzip (inner)", inner));
        // CSV.
        let csv = dir.join("d.csv");
        std::fs::write(
            &csv,
            "x0,x1,c,y\n0.5,1,0,2.5\n-1,2e-3,2,\n3,4,1,7\n5, 6 ,2,8\n",
        )
        .unwrap();
        let text = std::fs::read(&csv).unwrap();
        let columns = CsvColumns {
            features: None,
            exclude: Vec::new(),
            tasks: vec![
                CsvTask::new("c", TaskKind::Classification { classes: 3 }, &["c"]),
                CsvTask::new("y", TaskKind::Regression { outputs: 1 }, &["y"]),
            ],
        };
        tallies.push((
            "csv",
            fuzz("csv", &text, None, &csv, 150, &mut |p| {
                as_unit(manytask::data::csv::feature_columns(p, &columns))?;
                as_unit(manytask::data::csv::read(p, &columns))
            }),
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        tallies
    });
    let checkpoint = checkpoint_tally();
    let mut panics = Vec::new();
    let mut total = 0;
    for (name, t) in tallies.iter().chain([&("checkpoint", checkpoint)]) {
        println!(
            "{name}: {} mutations, {} valid, errors {:?}",
            t.total(),
            t.valid,
            t.errors
        );
        for (kind, e) in &t.examples {
            println!("  {kind}: e.g. {e}");
        }
        total += t.total();
        panics.extend(t.panics.iter().cloned());
    }
    assert!(total >= 600, "only {total} mutations");
    assert!(
        panics.is_empty(),
        "{} panic(s):\n{}",
        panics.len(),
        panics.join("\n")
    );
}

/// A tiny model's checkpoint, mutated, read by `metadata` and `load`.
fn checkpoint_tally() -> Tally {
    use manytask::arch::{ModelSpec, Sharing, TaskSpec};
    use manytask::checkpoint::{self, Restore};
    use manytask::graph::{Optimizer, Program};
    bounded("checkpoint mutations", 120, || {
        let ctx = &crate::common::contexts()[0];
        let spec = ModelSpec {
            init: manytask::types::WeightInit::Glorot,
            rows: 2,
            inputs: 3,
            activation: manytask::types::Activation::Relu,
            sharing: Sharing::Hard { trunk: vec![4] },
            tasks: vec![TaskSpec::new("t", TaskKind::Regression { outputs: 2 }, &[])],
        };
        let model = spec.build(ctx).unwrap();
        let optimizer = Optimizer::AdamW(manytask::types::AdamW::default());
        let mut program = Program::build(ctx, model.graph, optimizer, 1).unwrap();
        let pieces = model.nodes.pieces;
        let dir = scratch_dir("hostile-ckpt-mutations");
        let path = dir.join("ck.safetensors");
        let meta = [("config".to_string(), "{\"model\":{}}".to_string())];
        checkpoint::save(ctx, &program, &pieces, &meta, &path).unwrap();
        let original = std::fs::read(&path).unwrap();
        let tally = fuzz(
            "checkpoint",
            &original,
            Some((0, 8)),
            &path,
            150,
            &mut |p| {
                as_unit(checkpoint::metadata(p))?;
                as_unit(checkpoint::load(
                    ctx,
                    &mut program,
                    &pieces,
                    p,
                    Restore::Everything,
                ))
            },
        );
        std::fs::remove_dir_all(&dir).unwrap();
        tally
    })
}

#[test]
fn a_model_too_large_for_the_adapter_is_refused_before_allocating() {
    // 10^10 weights in one layer: 40 GB of host memory for the initial
    // values alone, so the check must come before any allocation.
    let (code, stderr) = run_bounded(
        &[
            "train",
            "--widths",
            "100000,100000",
            "--tasks",
            "1",
            "--steps",
            "1",
        ],
        120,
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert_mentions(&stderr, &["bytes", "max_storage_buffer_binding_size"]);
}

#[test]
fn a_checkpoint_whose_config_asks_for_a_huge_model_is_refused_by_eval() {
    use safetensors::tensor::{SafeTensors, TensorView};
    let dir = scratch_dir("hostile-huge-checkpoint");
    let small = dir.join("small.safetensors");
    let (code, stderr) = run_bounded(
        &[
            "train",
            "--tasks",
            "1",
            "--steps",
            "1",
            "--widths",
            "8",
            "--quiet",
            "--save",
            small.to_str().unwrap(),
        ],
        300,
    );
    assert_eq!(code, Some(0), "{stderr}");
    // The same tensors, with the stored config asking for two layers of
    // 100000: eval builds the model from that config.
    let bytes = std::fs::read(&small).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    let config = meta.get("config").unwrap();
    assert!(config.contains("\"widths\":[8]"), "{config}");
    let huge = config.replace("\"widths\":[8]", "\"widths\":[100000,100000]");
    meta.insert("config".into(), huge);
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, TensorView)> = tensors.tensors();
    let hostile = dir.join("huge.safetensors");
    safetensors::serialize_to_file(views, Some(meta), &hostile).unwrap();
    let (code, stderr) = run_bounded(&["eval", "--checkpoint", hostile.to_str().unwrap()], 120);
    assert_eq!(code, Some(2), "{stderr}");
    assert_mentions(&stderr, &["bytes", "max_storage_buffer_binding_size"]);
    std::fs::remove_dir_all(dir).unwrap();
}
