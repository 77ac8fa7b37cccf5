//! Run configs (`manytask::config`): every example parses, unknown keys
//! and impossible values are errors naming the key, flags override the
//! file, and `eval` of a checkpoint reproduces the test metrics `train`
//! printed.

use std::path::{Path, PathBuf};

use clap::Parser;
use manytask::arch::{Sharing, TaskKind};
use manytask::cli::{overrides, train::TrainArgs, Cli, Command as Verb};
use manytask::config::Config;
use manytask::data::batch::Batcher;
use manytask::graph::Optimizer;
use manytask::types::{Reduction, WeightInit};

use crate::common::{manytask, run_timed, scratch_dir, RUN_SECS};

/// Runs the binary under the test deadline; returns stdout, panicking
/// with stderr on failure.
fn run_ok(args: &[&str]) -> String {
    crate::common::run_ok(manytask().args(args)).0
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs")
}

/// The error of parsing `text`, as the user sees it.
fn error_of(text: &str) -> String {
    match Config::from_toml(text, "test.toml") {
        Ok(c) => panic!("accepted:\n{text}\nas {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn train_args(flags: &[&str]) -> TrainArgs {
    let argv = ["manytask", "train"].iter().chain(flags).copied();
    match Cli::try_parse_from(argv).unwrap().command {
        Some(Verb::Train(args)) => *args,
        other => panic!("not train: {other:?}"),
    }
}

#[test]
fn every_example_config_parses_validates_and_round_trips_through_json() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        let config = Config::load(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let back = Config::from_json(&config.to_json().unwrap(), "json").unwrap();
        assert_eq!(back.model, config.model, "{}", file.display());
        assert_eq!(back.tasks, config.tasks, "{}", file.display());
        assert_eq!(back.data, config.data, "{}", file.display());
        assert_eq!(back.train, config.train, "{}", file.display());
    }
    // Relative data paths are taken from the config's folder.
    let csv = Config::load(&examples().join("csv.toml")).unwrap();
    let path = csv.data.path.clone().unwrap();
    assert!(
        path.is_absolute() && path.ends_with("examples/configs/tiny.csv"),
        "{path:?}"
    );
}

#[test]
fn example_configs_map_one_to_one_onto_the_library_types() {
    let soft = Config::load(&examples().join("soft_trace_norm.toml")).unwrap();
    let spec = soft.model_spec(64).unwrap();
    match spec.sharing {
        Sharing::Soft {
            columns,
            regularisers,
        } => {
            assert_eq!(columns, vec![64, 64]);
            assert_eq!(
                format!("{regularisers:?}"),
                "[TraceNorm { lambda: 0.001, variant: Tucker }, L2Distance { lambda: 0.0001 }]"
            );
        }
        other => panic!("{other:?}"),
    }
    let stitch = Config::load(&examples().join("cross_stitch_fashion_mnist.toml")).unwrap();
    match stitch.model_spec(784).unwrap().sharing {
        Sharing::CrossStitch {
            stitch_after,
            stitch,
            ..
        } => {
            assert_eq!(stitch_after, vec![0, 1]);
            assert_eq!((stitch.per_channel, stitch.diagonal), (false, Some(0.9)));
        }
        other => panic!("{other:?}"),
    }
    match stitch.train.optimizer().unwrap() {
        Optimizer::Sgd(s) => assert_eq!((s.lr, s.momentum, s.weight_decay), (0.05, 0.9, 0.0)),
        other => panic!("{other:?}"),
    }
    let hard = Config::load(&examples().join("hard_synthetic.toml")).unwrap();
    let spec = hard.model_spec(250).unwrap();
    assert_eq!(spec.tasks.len(), 3);
    assert!(spec.tasks.iter().all(|t| t.hidden == vec![64] && t.masked));
    assert_eq!(
        format!("{:?}", hard.train.weighting.weighting().unwrap()),
        "GradNorm { alpha: 1.5, lr: 0.025, mode: LastSharedLayer, update: Adam }"
    );
}

#[test]
fn an_empty_config_and_no_flags_are_todays_defaults() {
    let empty = Config::from_toml("", "empty.toml").unwrap();
    let resolved = overrides::resolve(&TrainArgs::default()).unwrap();
    for c in [&empty, &resolved] {
        let spec = c.model_spec(250).unwrap();
        assert_eq!(
            spec.sharing,
            Sharing::Hard {
                trunk: vec![256, 256]
            }
        );
        assert_eq!(spec.rows, 64);
        assert_eq!(c.train.total_steps(25), 400);
        assert_eq!(c.train.seed, 0);
        assert_eq!(c.train.every, 50);
        assert_eq!(c.data.source, "synthetic");
        assert_eq!((c.data.validation, c.data.test), (0.1, 0.1));
        match c.train.optimizer().unwrap() {
            Optimizer::AdamW(a) => assert_eq!(a, Default::default()),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.train.weighting.weighting().unwrap().name(), "equal");
    }
    // The default data: 4 synthetic tasks of 100 outputs, 250 inputs.
    let mut c = resolved;
    let data = c.dataset().unwrap();
    c.fill_tasks(&data);
    assert_eq!(
        (data.rows(), data.features(), c.tasks.len()),
        (2000, 250, 4)
    );
    assert!(c
        .task_specs()
        .unwrap()
        .iter()
        .all(|t| t.kind == TaskKind::Regression { outputs: 100 } && t.hidden.is_empty()));
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let cases = [
        ("colour = 1\n", "`colour`"),
        ("[model]\nkind = \"hard\"\nwidth = [4]\n", "`width`"),
        ("[model]\nkind = \"cross_stitch\"\n[model.stitch]\nalpha = 1\n", "`alpha`"),
        ("[data]\nsource = \"csv\"\npth = \"a.csv\"\n", "`pth`"),
        ("[train]\nlearning_rate = 0.1\n", "`learning_rate`"),
        ("[train]\nweighting = { method = \"dwa\", temprature = 2 }\n", "`temprature`"),
        (
            "[[tasks]]\nname = \"a\"\nkind = \"regression\"\noutputs = 2\n\n[[tasks]]\nname = \"b\"\nkind = \"binary\"\nlabels = 1\ncolour = 2\n",
            "`colour`",
        ),
        (
            "[model]\nkind = \"soft\"\n[[model.regularisers]]\nkind = \"l2_distance\"\nlambda = 1\nstrength = 2\n",
            "`strength`",
        ),
    ];
    for (text, key) in cases {
        let e = error_of(text);
        assert!(e.contains("test.toml") && e.contains(key), "{text}\n→ {e}");
        assert!(e.contains("unknown field"), "{text}\n→ {e}");
    }
}

#[test]
fn impossible_values_are_errors_naming_the_key() {
    let three_tasks = "[[tasks]]\nname = \"a\"\nkind = \"regression\"\noutputs = 2\n\
                       [[tasks]]\nname = \"b\"\nkind = \"binary\"\nlabels = 1\n\
                       [[tasks]]\nname = \"c\"\nkind = \"foo\"\n";
    let cases: Vec<(String, &str)> = vec![
        ("[model]\nwidths = [4, 0]\n".into(), "model.widths[1] = 0: widths must be positive"),
        ("[model]\nwidths = []\n".into(), "model.widths = []"),
        ("[model]\nkind = \"deep\"\n".into(), "model.kind = \"deep\": expected hard"),
        ("[model]\nactivation = \"swish\"\n".into(), "model.activation = \"swish\""),
        (three_tasks.into(), "tasks[2].kind = \"foo\": expected classification, regression or binary"),
        (
            "[[tasks]]\nname = \"a\"\nkind = \"regression\"\nclasses = 3\n".into(),
            "tasks[0].classes: only for kind = \"classification\"",
        ),
        ("[[tasks]]\nname = \"a\"\nkind = \"binary\"\n".into(), "tasks[0].labels: missing"),
        ("[[tasks]]\nname = \"a\"\nkind = \"binary\"\nlabels = 0\n".into(), "tasks[0].labels = 0"),
        (
            "[[tasks]]\nname = \"a\"\nkind = \"binary\"\nlabels = 1\nhidden = [3, 0]\n".into(),
            "tasks[0].hidden[1] = 0",
        ),
        (
            "[[tasks]]\nname = \"a\"\nkind = \"binary\"\nlabels = 1\n[[tasks]]\nname = \"a\"\nkind = \"binary\"\nlabels = 1\n".into(),
            "tasks[1].name = \"a\": names must be unique",
        ),
        (
            "[model]\nkind = \"cross_stitch\"\nwidths = [8, 8]\nstitch_after = [0, 2]\n".into(),
            "model.stitch_after[1] = 2",
        ),
        ("[model]\nstitch_after = [0]\n".into(), "model.stitch_after: only for cross_stitch"),
        (
            "[model]\nkind = \"sluice\"\nwidths = [6]\nsubspaces = 4\n".into(),
            "model.widths[0] = 6",
        ),
        (
            "[model]\nkind = \"cross_stitch\"\n[model.stitch]\ninit = \"ones\"\ndiagonal = 0.5\n".into(),
            "model.stitch.diagonal: only with init = \"diagonal\"",
        ),
        (
            "[model]\nkind = \"soft\"\n[[model.regularisers]]\nkind = \"trace_norm\"\nlambda = -1\n".into(),
            "model.regularisers[0].lambda = -1",
        ),
        (
            "[model]\nkind = \"soft\"\n[[model.regularisers]]\nkind = \"trace_norm\"\nlambda = 1\nvariant = \"tensor_train\"\nmode = \"proximal\"\n".into(),
            "model.regularisers[0].mode = \"proximal\": only with variant = \"last_axis\"",
        ),
        (
            "[model]\nkind = \"soft\"\n[[model.regularisers]]\nkind = \"group_lasso\"\nlambda = 1\nvariant = \"tucker\"\n".into(),
            "model.regularisers[0].variant: only for kind = \"trace_norm\"",
        ),
        ("[data]\nsource = \"hdf5\"\n".into(), "data.source = \"hdf5\""),
        (
            "[data]\nsource = \"mmoe_synthetic\"\ncorrelation = 1.5\n".into(),
            "data.correlation = 1.5",
        ),
        (
            "[data]\nsource = \"mmoe_synthetic\"\nnoise = -0.1\n".into(),
            "data.noise = -0.1",
        ),
        (
            "[data]\nsource = \"mmoe_synthetic\"\ntasks = 3\n".into(),
            "data.tasks: not a key of source = \"mmoe_synthetic\"",
        ),
        (
            "[data]\nsource = \"synthetic\"\ncorrelation = 0.5\n".into(),
            "data.correlation: not a key of source = \"synthetic\"",
        ),
        ("[data]\nvalidation = 1.5\n".into(), "data.validation = 1.5"),
        ("[data]\nvalidation = 0.5\ntest = 0.5\n".into(), "data.validation + data.test = 1"),
        ("[data]\nsource = \"safetensors\"\n".into(), "data.path: missing"),
        (
            "[data]\nsource = \"safetensors\"\npath = \"a\"\nimages = \"b\"\n".into(),
            "data.images: not a key of source = \"safetensors\"",
        ),
        ("[data]\nsource = \"csv\"\npath = \"a.csv\"\n".into(), "tasks: missing: source = \"csv\" needs [[tasks]]"),
        (
            "[[tasks]]\nname = \"y\"\nkind = \"regression\"\noutputs = 2\n[data]\nsource = \"csv\"\npath = \"a.csv\"\n".into(),
            "data.targets.y: missing",
        ),
        (
            "[[tasks]]\nname = \"y\"\nkind = \"regression\"\noutputs = 2\n[data]\nsource = \"csv\"\npath = \"a.csv\"\ntargets = { y = [\"a\"] }\n".into(),
            "data.targets.y = [\"a\"]: task \"y\" needs 2 column(s)",
        ),
        ("[data]\ntasks = 0\n".into(), "data.tasks = 0"),
        ("[data]\npart = \"train\"\n".into(), "data.part: not a key of source = \"synthetic\""),
        ("[train]\nbatch = 0\n".into(), "train.batch = 0"),
        ("[train]\nevery = 0\n".into(), "train.every = 0"),
        ("[train]\nsteps = 5\nepochs = 1\n".into(), "give steps or epochs, not both"),
        ("[train]\noptimizer = \"lbfgs\"\n".into(), "train.optimizer = \"lbfgs\""),
        ("[train]\nlr = 0\n".into(), "train.lr = 0"),
        ("[train]\nmomentum = 0.9\n".into(), "train.momentum: only for optimizer = \"sgd\""),
        ("[train]\noptimizer = \"sgd\"\nbeta1 = 0.9\n".into(), "train.beta1: only for optimizer = \"adamw\""),
        ("[train]\nbeta2 = 1.0\n".into(), "train.beta2 = 1"),
        ("[train]\nweighting = \"fancy\"\n".into(), "train.weighting.method = \"fancy\""),
        (
            "[train]\nweighting = { method = \"dwa\", alpha = 1 }\n".into(),
            "train.weighting.alpha: only for method gradnorm",
        ),
        (
            "[train]\nweighting = { method = \"dwa\", temperature = -1 }\n".into(),
            "train.weighting: ",
        ),
        (
            "[train]\nweighting = { method = \"cagrad\", rescale = 7 }\n".into(),
            "train.weighting.rescale = 7",
        ),
        (
            "[train]\nweighting = { method = \"gradnorm\", mode = \"everything\" }\n".into(),
            "train.weighting.mode = \"everything\"",
        ),
        (
            "[train]\nweighting = { method = \"mgda\", reg_eps = 0.1 }\n".into(),
            "train.weighting.reg_eps: only for method upgrad",
        ),
        (
            "[train]\nweighting = { method = \"upgrad\", norm_eps = -1 }\n".into(),
            "train.weighting: ",
        ),
        (
            "[train]\nweighting = { method = \"cagrad\", max_norm = 1 }\n".into(),
            "train.weighting.max_norm: only for method nash_mtl",
        ),
        (
            "[train]\nweighting = { method = \"nash_mtl\", max_norm = -1 }\n".into(),
            "nash_mtl max_norm -1 must be finite and ≥ 0",
        ),
        (
            "[train]\nweighting = { method = \"fairgrad\", alpha = 0 }\n".into(),
            "fairgrad alpha 0 must be finite and > 0",
        ),
        (
            "[train]\nweighting = { method = \"db_mtl\", alpha = 1 }\n".into(),
            "train.weighting.alpha: only for method gradnorm and fairgrad",
        ),
    ];
    let adversarial =
        "[[tasks]]\nname = \"a\"\nkind = \"binary\"\nlabels = 1\nadversarial = true\n";
    let cases: Vec<(String, &str)> = cases
        .into_iter()
        .chain([
            (
                format!("{adversarial}[train]\nreversal = \"linear\"\n"),
                "train.reversal = \"linear\": expected \"ganin\" or a number",
            ),
            (
                format!("{adversarial}[train]\nreversal = -1\n"),
                "train.reversal = -1: must be finite and ≥ 0",
            ),
            (
                "[train]\nreversal = 0.5\n".into(),
                "train.reversal: only for a model with an adversarial task",
            ),
            (
                format!("{adversarial}[model]\nkind = \"soft\"\n"),
                "tasks[0].adversarial: only for model.kind = \"hard\" or \"hard_fused\"",
            ),
        ])
        .collect();
    for (text, want) in cases {
        let e = error_of(&text);
        assert!(
            e.starts_with("config test.toml: ") && e.contains(want),
            "{text}\n→ {e}\nwanted: {want}"
        );
    }
}

#[test]
fn weighting_hyper_parameters_reach_the_weighting() {
    let c = Config::from_toml(
        "[train]\nweighting = { method = \"static\", weights = [1, 0.5] }\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        format!("{:?}", c.train.weighting.weighting().unwrap()),
        "Static([1.0, 0.5])"
    );
    let c = Config::from_toml("[train]\nweighting = \"static:2,3\"\n", "t").unwrap();
    assert_eq!(
        format!("{:?}", c.train.weighting.weighting().unwrap()),
        "Static([2.0, 3.0])"
    );
    let c = Config::from_toml(
        "[train]\nweighting = { method = \"mgda_ub\", normalisation = \"loss+\" }\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        format!("{:?}", c.train.weighting.weighting().unwrap()),
        "Mgda { normalisation: LossPlus, space: Representation }"
    );
    let c = Config::from_toml(
        "[train]\nweighting = { method = \"cagrad\", c = 0.2, rescale = 2 }\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        format!("{:?}", c.train.weighting.weighting().unwrap()),
        "CaGrad { c: 0.2, rescale: OnePlusC }"
    );
    let c = Config::from_toml(
        "[train]\nweighting = { method = \"upgrad\", norm_eps = 0.001, reg_eps = 0 }\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        format!("{:?}", c.train.weighting.weighting().unwrap()),
        "UpGrad { norm_eps: 0.001, reg_eps: 0.0 }"
    );
    let c = Config::from_toml(
        "[train]\nweighting = { method = \"nash_mtl\", max_norm = 0 }\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        format!("{:?}", c.train.weighting.weighting().unwrap()),
        "NashMtl { max_norm: 0.0 }"
    );
    let c = Config::from_toml(
        "[train]\nweighting = { method = \"fairgrad\", alpha = 2.5 }\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        format!("{:?}", c.train.weighting.weighting().unwrap()),
        "FairGrad { alpha: 2.5 }"
    );
}

#[test]
fn flags_given_override_the_config_and_the_rest_stays() {
    let csv = examples().join("csv.toml");
    let c = overrides::resolve(&train_args(&["--config", csv.to_str().unwrap()])).unwrap();
    assert_eq!(c.train.steps, Some(50));
    assert_eq!(c.model.widths, vec![16]);
    let c = overrides::resolve(&train_args(&[
        "--config",
        csv.to_str().unwrap(),
        "--steps",
        "10",
        "--widths",
        "8,4",
        "--lr",
        "0.5",
        "--optimizer",
        "sgd",
        "--weighting",
        "uncertainty",
        "--batch",
        "2",
        "--no-shuffle",
    ]))
    .unwrap();
    assert_eq!(c.train.total_steps(1000), 10);
    assert_eq!(c.model.widths, vec![8, 4]);
    assert_eq!(
        (c.train.lr, c.train.batch, c.train.shuffle),
        (Some(0.5), 2, false)
    );
    assert!(matches!(c.train.optimizer().unwrap(), Optimizer::Sgd(s) if s.lr == 0.5));
    assert_eq!(c.train.weighting.weighting().unwrap().name(), "uncertainty");
    // Untouched keys keep the file's values.
    assert_eq!(
        (c.train.seed, c.model.kind.as_str(), c.tasks.len()),
        (3, "hard", 3)
    );
    assert_eq!(c.data.source, "csv");
    // --epochs replaces the file's steps.
    let c = overrides::resolve(&train_args(&[
        "--config",
        csv.to_str().unwrap(),
        "--epochs",
        "2",
    ]))
    .unwrap();
    assert_eq!((c.train.steps, c.train.epochs), (None, Some(2)));
    // A flag that makes the config impossible names the key.
    let soft = examples().join("soft_trace_norm.toml");
    let e = overrides::resolve(&train_args(&[
        "--config",
        soft.to_str().unwrap(),
        "--model",
        "hard",
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("model.regularisers: only for soft"), "{e}");
    let e = overrides::resolve(&train_args(&[
        "--config",
        csv.to_str().unwrap(),
        "--tasks",
        "3",
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("--tasks 3: only for synthetic"), "{e}");
}

#[test]
fn a_config_that_does_not_fit_its_data_is_a_clear_error() {
    // Synthetic tasks have 4 outputs; the config says 5.
    let mut c = Config::from_toml(
        "[[tasks]]\nname = \"task0\"\nkind = \"regression\"\noutputs = 5\n\
         [data]\ntasks = 2\nsamples = 50\ninputs = 8\noutputs = 4\n",
        "t.toml",
    )
    .unwrap();
    let data = c.dataset().unwrap();
    c.fill_tasks(&data);
    let spec = c.model_spec(data.features()).unwrap();
    let e = Batcher::for_model(&data, &spec).err().unwrap().to_string();
    assert!(
        e.contains("task 'task0'") && e.contains("outputs: 5"),
        "{e}"
    );
    // A CSV column the file does not have.
    let dir = scratch_dir("config-misfit");
    let toml = dir.join("bad.toml");
    let text = std::fs::read_to_string(examples().join("csv.toml"))
        .unwrap()
        .replace(
            "path = \"tiny.csv\"",
            &format!("path = {:?}", examples().join("tiny.csv")),
        )
        .replace("\"x3\"]", "\"x4\"]");
    std::fs::write(&toml, text).unwrap();
    let e = Config::load(&toml)
        .unwrap()
        .dataset()
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("tiny.csv") && e.contains("no column 'x4'"),
        "{e}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The metrics table from "test split (…):" to the next blank or
/// non-indented line.
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

#[test]
fn eval_of_a_saved_checkpoint_reproduces_the_test_metrics_train_printed() {
    let dir = scratch_dir("config-eval");
    let ck = dir.join("csv.safetensors");
    let csv = examples().join("csv.toml");
    let (csv, ck_s) = (csv.to_str().unwrap(), ck.to_str().unwrap());
    let train = run_ok(&["train", "--config", csv, "--steps", "20", "--save", ck_s]);
    assert!(train.contains("20 steps of 4 rows"), "{train}");
    let table = test_table(&train);
    // "test split (…):", the header and three tasks.
    assert_eq!(table.len(), 5, "{table:?}");
    // From the config stored in the checkpoint, and from the file.
    let stored = run_ok(&["eval", "--checkpoint", ck_s]);
    assert_eq!(test_table(&stored), table, "{stored}");
    let from_file = run_ok(&["eval", "--checkpoint", ck_s, "--config", csv]);
    assert_eq!(test_table(&from_file), table, "{from_file}");
    // Another split is another table.
    let validation = run_ok(&["eval", "--checkpoint", ck_s, "--split", "validation"]);
    assert!(
        validation.contains("validation split (2 samples):"),
        "{validation}"
    );

    // The stored config is the resolved one: the --steps override and the
    // tasks are in it.
    let meta = manytask::checkpoint::metadata(&ck).unwrap();
    let stored = Config::from_json(&meta[manytask::checkpoint::CONFIG_KEY], "meta").unwrap();
    assert_eq!((stored.train.steps, stored.tasks.len()), (Some(20), 3));

    // A config of another shape: an error naming the checkpoint, not a panic.
    let other = dir.join("other.toml");
    let text = std::fs::read_to_string(examples().join("csv.toml"))
        .unwrap()
        .replace(
            "path = \"tiny.csv\"",
            &format!("path = {:?}", examples().join("tiny.csv")),
        )
        .replace("widths = [16]", "widths = [12]");
    std::fs::write(&other, text).unwrap();
    let out = run_timed(
        manytask().args([
            "eval",
            "--checkpoint",
            ck_s,
            "--config",
            other.to_str().unwrap(),
        ]),
        RUN_SECS,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("checkpoint") && stderr.contains("trunk.0"),
        "{stderr}"
    );
    // A checkpoint without a stored config asks for --config.
    std::fs::write(dir.join("empty.safetensors"), b"").unwrap();
    let out = run_timed(
        manytask().args([
            "eval",
            "--checkpoint",
            dir.join("empty.safetensors").to_str().unwrap(),
        ]),
        RUN_SECS,
    );
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_config_named_without_a_folder_reads_its_data_from_the_current_folder() {
    // `Path::parent` of "csv.toml" is "", which is not a folder.
    let out = run_timed(
        manytask()
            .current_dir(examples())
            .args(["train", "--config", "csv.toml", "--steps", "1"]),
        RUN_SECS,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tiny.csv (20 samples"));
}

#[test]
fn an_adversarial_task_trains_behind_a_gradient_reversal_from_the_config() {
    let c = Config::from_toml(
        "[[tasks]]\nname = \"task0\"\nkind = \"regression\"\noutputs = 4\n\
         [[tasks]]\nname = \"task1\"\nkind = \"regression\"\noutputs = 4\nadversarial = true\n\
         [train]\nreversal = 0.5\n",
        "t",
    )
    .unwrap();
    let specs = c.task_specs().unwrap();
    assert_eq!(
        specs.iter().map(|t| t.adversarial).collect::<Vec<_>>(),
        [false, true]
    );
    assert_eq!(
        c.train.reversal().unwrap(),
        manytask::graph::ReversalSchedule::Constant(0.5)
    );
    // The CLI runs it with the default (Ganin) schedule.
    let dir = scratch_dir("config-adversarial");
    let toml = dir.join("adversarial.toml");
    std::fs::write(
        &toml,
        "[model]\nwidths = [16]\n\
         [data]\ntasks = 2\nsamples = 200\ninputs = 8\noutputs = 4\n\
         [[tasks]]\nname = \"task0\"\nkind = \"regression\"\noutputs = 4\n\
         [[tasks]]\nname = \"task1\"\nkind = \"regression\"\noutputs = 4\nadversarial = true\n",
    )
    .unwrap();
    let out = run_ok(&[
        "train",
        "--config",
        toml.to_str().unwrap(),
        "--steps",
        "20",
        "--quiet",
    ]);
    assert!(
        out.contains("adversarial: 1 task(s) behind a gradient reversal, λ Ganin"),
        "{out}"
    );
    assert_eq!(test_table(&out).len(), 4, "{out}"); // title, header, 2 tasks
    std::fs::remove_dir_all(dir).unwrap();
}

// ---------------------------------------------------------------------
// The training layer's keys (`[train]` drop_last, schedule, early
// stopping, checkpoints; sgd's momentum default) and their flags.
// ---------------------------------------------------------------------

#[test]
fn training_layer_keys_parse_round_trip_and_become_trainer_options() {
    use manytask::data::batch::LastBatch;
    use manytask::train::setup::train_options;
    use manytask::train::{Direction, Length, ScheduleKind};
    let c = Config::from_toml(
        "[train]\nepochs = 30\ndrop_last = true\nsave_best = \"best.safetensors\"\n\
         save_every = 5\nsave_every_path = \"ckpt/epoch-{epoch}.safetensors\"\n\
         [train.schedule]\nkind = \"cosine\"\nwarmup_steps = 100\nmin_lr = 1e-5\n\
         [train.early_stopping]\nmetric = \"task0.accuracy\"\npatience = 4\nmin_delta = 0.01\n",
        "t.toml",
    )
    .unwrap();
    let back = Config::from_json(&c.to_json().unwrap(), "json").unwrap();
    assert_eq!(back.train, c.train);
    let o = train_options(&c).unwrap();
    assert_eq!(o.length, Length::Epochs(30));
    assert_eq!(o.last_batch, LastBatch::Drop);
    assert_eq!(o.schedule.kind, ScheduleKind::Cosine { min_lr: 1e-5 });
    assert_eq!(o.schedule.warmup_steps, 100);
    let e = o.early_stopping.clone().unwrap();
    assert_eq!(e.patience, 4);
    assert_eq!(e.monitor.metric, "task0.accuracy");
    assert_eq!(
        e.monitor.direction,
        Direction::Max,
        "accuracy: higher is better"
    );
    assert_eq!(e.monitor.min_delta, 0.01);
    assert_eq!(o.save_best.as_deref(), Some(Path::new("best.safetensors")));
    let p = o.save_every.clone().unwrap();
    assert_eq!(p.epochs, 5);
    assert_eq!(p.path(10, 250), Path::new("ckpt/epoch-10.safetensors"));
    // An explicit mode wins over the name; a step schedule takes gamma 0.1.
    let c = Config::from_toml(
        "[train]\n[train.schedule]\nkind = \"step\"\nstep_size = 30\n\
         [train.early_stopping]\nmetric = \"loss\"\nmode = \"max\"\npatience = 1\n",
        "t.toml",
    )
    .unwrap();
    let o = train_options(&c).unwrap();
    assert_eq!(
        o.schedule.kind,
        ScheduleKind::Step {
            step_size: 30,
            gamma: 0.1
        }
    );
    assert_eq!(o.early_stopping.unwrap().monitor.direction, Direction::Max);
    // The defaults: keep the short batch, constant rate, nothing watched.
    let o = train_options(&Config::defaults()).unwrap();
    assert_eq!(o.last_batch, LastBatch::Pad);
    assert!(o.schedule.is_constant() && o.monitor().is_none());
    assert_eq!(o.length, Length::Steps(400));
}

#[test]
fn sgd_is_plain_sgd_unless_momentum_is_given() {
    let plain = Config::from_toml("[train]\noptimizer = \"sgd\"\n", "t.toml").unwrap();
    match plain.train.optimizer().unwrap() {
        Optimizer::Sgd(s) => assert_eq!((s.lr, s.momentum, s.weight_decay), (0.01, 0.0, 0.0)),
        other => panic!("{other:?}"),
    }
    let heavy =
        Config::from_toml("[train]\noptimizer = \"sgd\"\nmomentum = 0.9\n", "t.toml").unwrap();
    match heavy.train.optimizer().unwrap() {
        Optimizer::Sgd(s) => assert_eq!(s.momentum, 0.9),
        other => panic!("{other:?}"),
    }
}

#[test]
fn impossible_training_layer_keys_are_errors_naming_the_key() {
    for (text, want) in [
        (
            "[train.schedule]\nkind = \"linear\"\n",
            "train.schedule.kind = \"linear\": expected constant, step or cosine",
        ),
        (
            "[train.schedule]\nkind = \"step\"\n",
            "train.schedule.step_size: missing",
        ),
        (
            "[train.schedule]\nkind = \"step\"\nstep_size = 0\n",
            "train.schedule.step_size = 0",
        ),
        (
            "[train.schedule]\nkind = \"step\"\nstep_size = 3\ngamma = 0\n",
            "train.schedule.gamma = 0",
        ),
        (
            "[train.schedule]\nkind = \"step\"\nstep_size = 3\nmin_lr = 0.1\n",
            "train.schedule.min_lr: only for kind = \"cosine\"",
        ),
        (
            "[train.schedule]\nkind = \"cosine\"\nmin_lr = -1\n",
            "train.schedule.min_lr = -1",
        ),
        (
            "[train.schedule]\nkind = \"cosine\"\nwarmup = 5\n",
            "unknown field `warmup`",
        ),
        (
            "[train.early_stopping]\nmetric = \"loss\"\n",
            "train.early_stopping.patience: missing",
        ),
        (
            "[train.early_stopping]\npatience = 0\n",
            "train.early_stopping.patience = 0",
        ),
        (
            "[train.early_stopping]\nmetric = \"task0.f1\"\npatience = 2\n",
            "train.early_stopping.metric = \"task0.f1\"",
        ),
        (
            "[train.early_stopping]\nmode = \"up\"\npatience = 2\n",
            "train.early_stopping.mode = \"up\": expected min or max",
        ),
        (
            "[train.early_stopping]\npatience = 2\nmin_delta = -0.1\n",
            "train.early_stopping.min_delta = -0.1",
        ),
        (
            "[train]\nsave_every = 2\n",
            "train.save_every_path: missing",
        ),
        (
            "[train]\nsave_every = 0\nsave_every_path = \"a\"\n",
            "train.save_every = 0",
        ),
        (
            "[train]\nsave_every_path = \"a\"\n",
            "train.save_every_path: only with train.save_every",
        ),
        ("[train]\ndrop_last = 1\n", "drop_last"),
    ] {
        let e = error_of(text);
        assert!(e.contains(want), "{text}\n→ {e}");
    }
}

#[test]
fn training_layer_flags_override_the_config() {
    let c = overrides::resolve(&train_args(&[
        "--drop-last",
        "--schedule",
        "cosine",
        "--warmup",
        "10",
        "--min-lr",
        "0.001",
        "--patience",
        "3",
        "--monitor",
        "task1.mae",
        "--save-best",
        "b.safetensors",
        "--save-every",
        "2",
        "--save-every-path",
        "e{epoch}.safetensors",
    ]))
    .unwrap();
    let t = &c.train;
    assert!(t.drop_last);
    let s = t.schedule.as_ref().unwrap();
    assert_eq!(
        (s.kind.as_str(), s.warmup_steps, s.min_lr),
        ("cosine", 10, Some(0.001))
    );
    let e = t.early_stopping.as_ref().unwrap();
    assert_eq!((e.metric.as_str(), e.patience), ("task1.mae", Some(3)));
    assert_eq!(t.save_best.as_deref(), Some(Path::new("b.safetensors")));
    assert_eq!(t.save_every, Some(2));
    // --schedule over a file's step schedule drops the step keys.
    let dir = scratch_dir("config-train-flags");
    let file = dir.join("step.toml");
    std::fs::write(
        &file,
        "[train.schedule]\nkind = \"step\"\nstep_size = 5\ngamma = 0.5\nwarmup_steps = 2\n",
    )
    .unwrap();
    let c = overrides::resolve(&train_args(&[
        "--config",
        file.to_str().unwrap(),
        "--schedule",
        "cosine",
    ]))
    .unwrap();
    let s = c.train.schedule.unwrap();
    assert_eq!(
        (s.kind.as_str(), s.step_size, s.warmup_steps),
        ("cosine", None, 2)
    );
    // --monitor alone watches nothing.
    let e = overrides::resolve(&train_args(&["--monitor", "loss"])).unwrap_err();
    assert!(e.to_string().contains("--monitor loss: only with"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_task_reduction_is_read_and_checked_against_its_kind() {
    let c = Config::from_toml(
        "[[tasks]]\nname = \"a\"\nkind = \"regression\"\noutputs = 3\nreduction = \"half_sum\"\n\
         [[tasks]]\nname = \"b\"\nkind = \"binary\"\nlabels = 2\nreduction = \"sum\"\n\
         [[tasks]]\nname = \"c\"\nkind = \"classification\"\nclasses = 4\nreduction = \"mean\"\n\
         [[tasks]]\nname = \"d\"\nkind = \"regression\"\noutputs = 1\n",
        "t",
    )
    .unwrap();
    let specs = c.task_specs().unwrap();
    assert_eq!(
        specs.iter().map(|t| t.reduction).collect::<Vec<_>>(),
        [
            Reduction::HalfSum,
            Reduction::Sum,
            Reduction::Mean,
            Reduction::Mean // the default
        ]
    );
    // The key round-trips through the checkpoint's JSON.
    let back = Config::from_json(&c.to_json().unwrap(), "json").unwrap();
    assert_eq!(back.tasks, c.tasks);
    assert_eq!(back.task_specs().unwrap(), specs);
    for (text, want) in [
        (
            "[[tasks]]\nname = \"a\"\nkind = \"regression\"\noutputs = 3\nreduction = \"avg\"\n",
            "tasks[0].reduction = \"avg\": expected mean, sum or half_sum",
        ),
        (
            "[[tasks]]\nname = \"a\"\nkind = \"binary\"\nlabels = 3\nreduction = \"half_sum\"\n",
            "tasks[0].reduction = \"half_sum\": not defined for kind = \"binary\" (expected mean or sum)",
        ),
        (
            "[[tasks]]\nname = \"a\"\nkind = \"binary\"\nlabels = 3\n\
             [[tasks]]\nname = \"b\"\nkind = \"classification\"\nclasses = 3\nreduction = \"sum\"\n",
            "tasks[1].reduction = \"sum\": not defined for kind = \"classification\" (expected mean)",
        ),
    ] {
        let e = error_of(text);
        assert!(
            e.starts_with("config test.toml: ") && e.contains(want),
            "{text}\n→ {e}\nwanted: {want}"
        );
    }
}

/// QM9's 11 regression targets.
const QM9: [&str; 11] = [
    "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "u0", "u298", "h298", "g298",
];

#[test]
fn one_entry_with_names_is_one_task_per_name() {
    let names = QM9.map(|n| format!("{n:?}")).join(", ");
    let text = format!(
        "[[tasks]]\nnames = [{names}]\nkind = \"regression\"\noutputs = 1\nhidden = [8]\n\
         reduction = \"sum\"\n\
         [[tasks]]\nname = \"extra\"\nkind = \"binary\"\nlabels = 2\n"
    );
    let c = Config::from_toml(&text, "t").unwrap();
    let specs = c.task_specs().unwrap();
    assert_eq!(specs.len(), 12);
    for (spec, name) in specs.iter().zip(QM9) {
        assert_eq!(spec.name, name);
        assert_eq!(spec.kind, TaskKind::Regression { outputs: 1 });
        assert_eq!(
            (spec.hidden.clone(), spec.reduction),
            (vec![8], Reduction::Sum)
        );
        assert!(spec.masked);
    }
    assert_eq!(specs[11].name, "extra");
    assert_eq!(specs[11].reduction, Reduction::Mean);
    // The resolved config (what a checkpoint stores) holds one entry per
    // task, and reads back to the same tasks.
    let json = c.to_json().unwrap();
    assert!(!json.contains("names"), "{json}");
    let back = Config::from_json(&json, "json").unwrap();
    assert_eq!(back.tasks, c.tasks);
    assert_eq!(back.task_specs().unwrap(), specs);
    // … and so does the long form.
    let long: String = QM9
        .iter()
        .map(|n| {
            format!(
                "[[tasks]]\nname = {n:?}\nkind = \"regression\"\noutputs = 1\nhidden = [8]\n\
                 reduction = \"sum\"\n"
            )
        })
        .collect();
    let long = Config::from_toml(
        &format!("{long}[[tasks]]\nname = \"extra\"\nkind = \"binary\"\nlabels = 2\n"),
        "long",
    )
    .unwrap();
    assert_eq!(long.tasks, c.tasks);

    for (text, want) in [
        (
            "[[tasks]]\nname = \"a\"\nnames = [\"b\", \"c\"]\nkind = \"binary\"\nlabels = 1\n",
            "tasks[0].names: give name (one task) or names (one task per name), not both",
        ),
        (
            "[[tasks]]\nnames = []\nkind = \"binary\"\nlabels = 1\n",
            "tasks[0].names = []: needs at least one name",
        ),
        (
            "[[tasks]]\nname = \"z\"\nkind = \"binary\"\nlabels = 1\n\
             [[tasks]]\nkind = \"binary\"\nlabels = 1\n",
            "tasks[1].name: missing",
        ),
        (
            "[[tasks]]\nnames = [\"a\", \"b\", \"a\"]\nkind = \"binary\"\nlabels = 1\n",
            "tasks[2].name = \"a\": names must be unique",
        ),
        (
            "[[tasks]]\nnames = [\"a\", \"b\"]\nkind = \"binary\"\nlabels = 1\ncolour = 3\n",
            "unknown field `colour`",
        ),
    ] {
        let e = error_of(text);
        assert!(
            e.starts_with("config test.toml: ") && e.contains(want),
            "{text}\n→ {e}\nwanted: {want}"
        );
    }
}

#[test]
fn the_model_init_key_picks_the_weight_initialisation() {
    assert_eq!(
        Config::from_toml("", "t")
            .unwrap()
            .model_spec(4)
            .unwrap()
            .init,
        WeightInit::PyTorch
    );
    for init in WeightInit::ALL {
        let c = Config::from_toml(&format!("[model]\ninit = \"{init}\"\n"), "t").unwrap();
        assert_eq!(c.model_spec(4).unwrap().init, init);
        let back = Config::from_json(&c.to_json().unwrap(), "json").unwrap();
        assert_eq!(back.model_spec(4).unwrap().init, init);
    }
    let e = error_of("[model]\ninit = \"xavier\"\n");
    assert!(
        e.starts_with("config test.toml: ")
            && e.contains("model.init = \"xavier\": expected pytorch, glorot or kaiming"),
        "{e}"
    );
}
