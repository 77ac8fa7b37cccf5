//! Batched task GEMM (docs/math.md §2): T independent GEMMs, task on
//! grid z, in ONE dispatch, each with its own M, N, K, leading dimensions
//! and element offsets into shared flat buffers, so task heads of
//! different widths (and the columns of soft sharing) run together. Same
//! kernels, epilogues and fusions as `gemm` (override TASKS in
//! `shaders/gemm_common.wgsl`); the per-task descriptors live in a small
//! u32 buffer (`TaskTable`) uploaded once per model, not per step.
//!
//! Reference: `reference::task_gemm`; tests: kernels-tests/task_gemm.rs.

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Recorder, Tensor};
use crate::kernels::autotune;
use crate::kernels::gemm::{
    self, check_prologue, common_dtype, operands, Epilogue, Fusion, GemmShape, Launch, Layout,
    Operand, Params, Variant, TASK_WORDS,
};

pub use crate::reference::task_gemm::TaskProblem;

const OP: &str = "task_gemm";

/// The problems of one pass of a block-diagonal per-task layer: task t
/// maps input columns [Σ_{<t} in, +in_t) of X [rows, Σ in] to output
/// columns [Σ_{<t} out, +out_t) of Y [rows, Σ out] through W_t [in_t,
/// out_t], stored one after another in a weight arena, bias b_t at the
/// output offset. `layout` picks the pass:
///   NN  Y_t = X_t · W_t           (forward)
///   NT  dX_t = D_t · W_tᵀ         (A = D, C = dX)
///   TN  dW_t = X_tᵀ · D_t, db_t   (A = X, B = D, C = dW arena)
pub fn block_diagonal(rows: usize, blocks: &[(usize, usize)], layout: Layout) -> Vec<TaskProblem> {
    let sum_in: usize = blocks.iter().map(|b| b.0).sum();
    let sum_out: usize = blocks.iter().map(|b| b.1).sum();
    let (mut i0, mut o0, mut w0) = (0, 0, 0);
    let mut out = Vec::with_capacity(blocks.len());
    for &(ni, no) in blocks {
        out.push(match layout {
            Layout::NT => TaskProblem {
                m: rows,
                n: ni,
                k: no,
                a_offset: o0,
                lda: sum_out,
                b_offset: w0,
                ldb: no,
                c_offset: i0,
                ldc: sum_in,
                bias_offset: 0,
            },
            Layout::TN => TaskProblem {
                m: ni,
                n: no,
                k: rows,
                a_offset: i0,
                lda: sum_in,
                b_offset: o0,
                ldb: sum_out,
                c_offset: w0,
                ldc: no,
                bias_offset: o0,
            },
            _ => TaskProblem {
                m: rows,
                n: no,
                k: ni,
                a_offset: i0,
                lda: sum_in,
                b_offset: w0,
                ldb: no,
                c_offset: o0,
                ldc: sum_out,
                bias_offset: o0,
            },
        });
        i0 += ni;
        o0 += no;
        w0 += ni * no;
    }
    out
}

/// The problems of one pass of a per-task layer whose tasks all read the
/// SAME input X [rows, inputs] (the first layer of soft-sharing columns):
/// task t maps X to output columns [Σ_{<t} out, +out_t) through W_t
/// [inputs, out_t]. `layout` picks the pass as in `block_diagonal`, except
/// NT: dX_t = D_t · W_tᵀ goes to block t of a [T, rows, inputs] scratch
/// (C windows must be disjoint), which the caller sums over t.
pub fn shared_input(
    rows: usize,
    inputs: usize,
    outputs: &[usize],
    layout: Layout,
) -> Vec<TaskProblem> {
    let sum_out: usize = outputs.iter().sum();
    let (mut o0, mut w0) = (0, 0);
    let mut out = Vec::with_capacity(outputs.len());
    for (t, &no) in outputs.iter().enumerate() {
        out.push(match layout {
            Layout::NT => TaskProblem {
                m: rows,
                n: inputs,
                k: no,
                a_offset: o0,
                lda: sum_out,
                b_offset: w0,
                ldb: no,
                c_offset: t * rows * inputs,
                ldc: inputs,
                bias_offset: 0,
            },
            Layout::TN => TaskProblem {
                m: inputs,
                n: no,
                k: rows,
                a_offset: 0,
                lda: inputs,
                b_offset: o0,
                ldb: sum_out,
                c_offset: w0,
                ldc: no,
                bias_offset: o0,
            },
            _ => TaskProblem {
                m: rows,
                n: no,
                k: inputs,
                a_offset: 0,
                lda: inputs,
                b_offset: w0,
                ldb: no,
                c_offset: o0,
                ldc: sum_out,
                bias_offset: o0,
            },
        });
        o0 += no;
        w0 += inputs * no;
    }
    out
}

/// The problems of one batched call, checked and uploaded.
pub struct TaskTable {
    layout: Layout,
    problems: Vec<TaskProblem>,
    gpu: Tensor,
}

impl TaskTable {
    /// Checks every problem (sizes ≥ 1, leading dimensions wide enough,
    /// disjoint C windows, u32 offsets) and uploads the table.
    pub fn new(ctx: &GpuContext, layout: Layout, problems: &[TaskProblem]) -> Result<TaskTable> {
        let bad = |t: usize, detail: String| Error::Shape {
            op: OP,
            detail: format!("task {t}: {detail}"),
        };
        if problems.is_empty() {
            return Err(Error::Shape {
                op: OP,
                detail: "no tasks".into(),
            });
        }
        let mut words = Vec::with_capacity(problems.len() * TASK_WORDS);
        for (i, t) in problems.iter().enumerate() {
            if t.m == 0 || t.n == 0 || t.k == 0 {
                return Err(bad(
                    i,
                    format!(
                        "M={} N={} K={}: every size must be at least 1",
                        t.m, t.n, t.k
                    ),
                ));
            }
            let (_, a_cols) = layout.a_stored(t.m, t.k);
            let (_, b_cols) = layout.b_stored(t.k, t.n);
            for (name, ld, cols) in [
                ("lda", t.lda, a_cols),
                ("ldb", t.ldb, b_cols),
                ("ldc", t.ldc, t.n),
            ] {
                if ld < cols {
                    return Err(bad(
                        i,
                        format!("{name}={ld} is less than the {cols} stored columns"),
                    ));
                }
            }
            let fields = [
                t.m,
                t.n,
                t.k,
                t.lda,
                t.ldb,
                t.ldc,
                t.a_offset,
                t.b_offset,
                t.c_offset,
                t.bias_offset,
                0,
                0,
            ];
            for f in fields {
                words.push(
                    u32::try_from(f).map_err(|_| bad(i, format!("{f} does not fit in u32")))?,
                );
            }
        }
        check_disjoint(
            problems,
            |t| {
                let t = *t;
                (0..t.m).map(move |r| (t.c_index(r, 0), t.n))
            },
            "C windows",
        )?;
        let gpu = Tensor::from_u32(ctx, "task_gemm.table", &[words.len()], &words)?;
        Ok(TaskTable {
            layout,
            problems: problems.to_vec(),
            gpu,
        })
    }

    /// The layout every task uses.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The tasks' problems, as given.
    pub fn problems(&self) -> &[TaskProblem] {
        &self.problems
    }

    /// 2·Σ m·n·k.
    pub fn flops(&self) -> f64 {
        self.problems
            .iter()
            .map(|t| 2.0 * (t.m * t.n * t.k) as f64)
            .sum()
    }

    /// The largest task in each dimension (grid and autotuning shape).
    fn envelope(&self) -> GemmShape {
        let max = |f: fn(&TaskProblem) -> usize| self.problems.iter().map(f).max().unwrap_or(0);
        GemmShape {
            batch: self.problems.len(),
            m: max(|t| t.m),
            n: max(|t| t.n),
            k: max(|t| t.k),
        }
    }

    /// Index one past the last element a task reads or writes, per operand.
    fn extents(&self) -> (usize, usize, usize, usize) {
        let l = self.layout;
        let mut out = (0, 0, 0, 0);
        for t in &self.problems {
            let (ar, ac) = l.a_stored(t.m, t.k);
            let (br, bc) = l.b_stored(t.k, t.n);
            out.0 = out.0.max(t.a_offset + (ar - 1) * t.lda + ac);
            out.1 = out.1.max(t.b_offset + (br - 1) * t.ldb + bc);
            out.2 = out.2.max(t.c_offset + (t.m - 1) * t.ldc + t.n);
            out.3 = out.3.max(t.bias_offset + t.n);
        }
        out
    }
}

/// Fails when two tasks' windows (runs of (start, len)) share an element.
fn check_disjoint<I>(
    problems: &[TaskProblem],
    runs: impl Fn(&TaskProblem) -> I,
    what: &str,
) -> Result<()>
where
    I: Iterator<Item = (usize, usize)>,
{
    let mut all: Vec<(usize, usize, usize)> = Vec::new();
    for (i, t) in problems.iter().enumerate() {
        all.extend(runs(t).map(|(s, len)| (s, s + len, i)));
    }
    all.sort_unstable();
    for w in all.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "{what} of tasks {} and {} overlap at element {}: outputs must be disjoint",
                    w[0].2, w[1].2, w[1].0
                ),
            });
        }
    }
    Ok(())
}

fn require_len(what: &str, t: &Tensor, needed: usize) -> Result<()> {
    if t.len() < needed {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "{what} '{}' has {} elements but the task table reaches element {}",
                t.label(),
                t.len(),
                needed - 1
            ),
        });
    }
    Ok(())
}

/// Runs every task of `table` in one dispatch. A, B, C (and bias, Z,
/// bias gradient, prologue input) are flat buffers of any shape; each
/// task reads and writes its windows. `variant: None` asks the autotuner
/// with the largest task's shape.
#[allow(clippy::too_many_arguments)]
pub fn task_gemm(
    rec: &mut Recorder,
    variant: Option<Variant>,
    table: &TaskTable,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epi: &Epilogue,
    fusion: &Fusion,
) -> Result<()> {
    common_dtype(OP, &operands(a, b, c, epi, fusion))?;
    let (a_end, b_end, c_end, bias_end) = table.extents();
    require_len("A", a, a_end)?;
    require_len("B", b, b_end)?;
    require_len("C", c, c_end)?;
    if let Some(bias) = epi.bias {
        require_len("bias", bias, bias_end)?;
    }
    if let Some(db) = fusion.bias_grad {
        require_len("bias gradient", db, bias_end)?;
        check_disjoint(
            &table.problems,
            |t| std::iter::once((t.bias_offset, t.n)),
            "bias-gradient windows",
        )?;
    }
    if let Some(z) = epi.z_out {
        require_len("z_out", z, c_end)?;
    }
    if let Some(pro) = &fusion.prologue {
        check_prologue(OP, pro)?;
        let end = if pro.operand == Operand::A {
            a_end
        } else {
            b_end
        };
        require_len("prologue input", pro.saved.tensor(), end)?;
    }
    let shape = table.envelope();
    let variant = match variant {
        Some(v) => v,
        None => autotune::gemm_variant(rec.ctx(), table.layout, shape)?,
    };
    let layout = table.layout;
    let vec_b = !layout.trans_b()
        && table
            .problems
            .iter()
            .all(|t| t.n % 4 == 0 && t.ldb % 4 == 0 && t.b_offset % 4 == 0);
    let vec_a = !layout.trans_a()
        && table
            .problems
            .iter()
            .all(|t| t.lda % 4 == 0 && t.a_offset % 4 == 0);
    let vec_at = layout.trans_a()
        && table
            .problems
            .iter()
            .all(|t| t.m % 4 == 0 && t.lda % 4 == 0 && t.a_offset % 4 == 0);
    let params = Params {
        m: shape.m as u32,
        n: shape.n as u32,
        k: shape.k as u32,
        tiles_m: 0,
        lda: 0,
        ldb: 0,
        ldc: 0,
        tiles: 0,
        stride_a: 0,
        stride_b: 0,
        stride_c: 0,
        stride_bias: 0,
        alpha: epi.alpha,
        beta: epi.beta.unwrap_or(0.0),
        _pad: [0; 2],
    };
    let call = Launch {
        variant,
        layout,
        vec_b,
        vec_a,
        vec_at,
        grid_m: shape.m,
        grid_n: shape.n,
        batch: shape.batch,
        params,
        tasks: Some(&table.gpu),
    };
    gemm::launch(rec, &call, a, b, c, epi, fusion)
}
