//! Conformance cases for the reduction family (`shaders/reduce.wgsl`).
//!
//! Integer-valued data makes every partial sum exact in f32 (the partials
//! stay far below 2^24), so sums and column sums must match the reference
//! bit for bit whatever the tree; sums of squares grow past 2^24 and get a
//! relative tolerance. One real-valued case per kernel checks the rounding
//! error bound instead.

use std::sync::Arc;

use crate::conformance::{
    poisoned_output, Case, Expected, HostTensor, Requirement, Tolerance, SIZES,
};
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::kernels::reduce as kernels;
use crate::reference::reduce as reference;
use crate::util::rng::Rng;

/// Integers in [-8, 8].
fn integer_data(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| (rng.next_u64() % 17) as f32 - 8.0).collect()
}

/// Uniform reals in [-1, 1).
fn real_data(seed: u64, n: usize) -> Vec<f32> {
    Rng::new(seed).uniform_vec(n, -1.0, 1.0)
}

/// Rounding steps any element passes through in `reduce::sum` for n ≤ 2^25:
/// per pass, a sequential run of ≤ 32 adds then a tree of 8 levels; at
/// most two passes before one value is left. Column sums: ≤ 16 row steps per
/// lane and a 4-level tree per pass. A float sum of depth d errs by at most
/// d · 2^-24 · Σ|x|.
const SUM_DEPTH: f64 = 96.0;

fn sum_bound(x: &[f32]) -> Tolerance {
    Tolerance::new(
        SUM_DEPTH * f32::EPSILON as f64 / 2.0 * reference::sum_abs(x),
        0.0,
    )
}

/// Sums of squares of integers pass 2^24 for large n: a few roundings.
const SQUARES: Tolerance = Tolerance::new(0.0, 1e-6);

/// (rows, cols) shapes for column sums: empty, tiny, odd, tile edges, a
/// tall one that needs more row chunks than grid z allows, and a wide one
/// that needs more than 65 535 column tiles.
const COLUMN_SHAPES: &[(usize, usize)] = &[
    (0, 5),
    (1, 1),
    (7, 3),
    (255, 17),
    (256, 16),
    (257, 33),
    (1000, 300),
    (65_537, 1),
    (1, 1_048_577),
    ((1 << 24) + 1, 1),
];

type ScalarKernel = fn(&mut Recorder, &Tensor, &Tensor) -> Result<()>;
/// A data generator and its name in case names.
type DataMaker = (&'static str, fn(u64, usize) -> Vec<f32>);

/// A case of a kernel that reduces a vector of n elements to one value.
fn scalar_case(
    kernel: &str,
    n: usize,
    data: DataMaker,
    launch: ScalarKernel,
    reference: fn(&[f32]) -> f32,
    tolerance: fn(&[f32]) -> Tolerance,
) -> Case {
    let (data_name, make) = data;
    Case {
        kernel: kernel.into(),
        case: format!("n={n} {data_name}"),
        inputs: Arc::new(move || vec![HostTensor::new(&[n], make(7 + n as u64, n))]),
        gpu: Arc::new(move |rec, t| {
            let out = poisoned_output(rec.ctx(), "reduce output", &[1])?;
            launch(rec, &t[0], &out)?;
            Ok(out)
        }),
        reference: Arc::new(move |h| Expected {
            values: vec![reference(&h[0].data)],
            tolerance: tolerance(&h[0].data),
        }),
        requires: Requirement::None,
    }
}

/// The conformance cases of `kernels::reduce`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let integers: DataMaker = ("integers", integer_data);
    let reals: DataMaker = ("reals", real_data);
    for &n in SIZES {
        cases.push(scalar_case(
            "reduce::sum",
            n,
            integers,
            kernels::sum,
            reference::sum,
            |_| Tolerance::EXACT,
        ));
        cases.push(scalar_case(
            "reduce::sum_squares",
            n,
            integers,
            kernels::sum_squares,
            reference::sum_squares,
            |_| SQUARES,
        ));
    }
    for n in [65_537, 1_000_003] {
        cases.push(scalar_case(
            "reduce::sum",
            n,
            reals,
            kernels::sum,
            reference::sum,
            sum_bound,
        ));
        cases.push(scalar_case(
            "reduce::sum_squares",
            n,
            reals,
            kernels::sum_squares,
            reference::sum_squares,
            |_| Tolerance::new(0.0, SUM_DEPTH * f32::EPSILON as f64 / 2.0),
        ));
    }
    for &(rows, cols) in COLUMN_SHAPES {
        cases.push(Case {
            kernel: "reduce::column_sums".into(),
            case: format!("rows={rows} cols={cols} integers"),
            inputs: Arc::new(move || {
                vec![HostTensor::new(
                    &[rows, cols],
                    integer_data((rows * 31 + cols) as u64, rows * cols),
                )]
            }),
            gpu: Arc::new(move |rec, t| {
                let out = poisoned_output(rec.ctx(), "column sums", &[cols])?;
                kernels::column_sums(rec, &t[0], &out)?;
                Ok(out)
            }),
            reference: Arc::new(move |h| Expected {
                values: reference::column_sums(&h[0].data, rows, cols),
                tolerance: Tolerance::EXACT,
            }),
            requires: Requirement::None,
        });
    }
    cases.push(Case {
        kernel: "reduce::column_sums".into(),
        case: "rows=4099 cols=37 reals".into(),
        inputs: Arc::new(|| vec![HostTensor::new(&[4099, 37], real_data(99, 4099 * 37))]),
        gpu: Arc::new(|rec, t| {
            let out = poisoned_output(rec.ctx(), "column sums", &[37])?;
            kernels::column_sums(rec, &t[0], &out)?;
            Ok(out)
        }),
        reference: Arc::new(|h| {
            // Bound each column by its own Σ|x|; use the largest.
            let abs: Vec<f32> = h[0].data.iter().map(|v| v.abs()).collect();
            let worst = reference::column_sums(&abs, 4099, 37)
                .into_iter()
                .fold(0f32, f32::max);
            Expected {
                values: reference::column_sums(&h[0].data, 4099, 37),
                tolerance: Tolerance::new(
                    SUM_DEPTH * f32::EPSILON as f64 / 2.0 * worst as f64,
                    0.0,
                ),
            }
        }),
        requires: Requirement::None,
    });
    cases
}
