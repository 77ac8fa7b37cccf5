//! Reference for the batched task GEMM (`kernels::task_gemm`,
//! docs/math.md §2): T independent GEMMs, each on windows of shared
//! flat buffers (element offset + leading dimension), so heads of
//! different widths run in one dispatch.

use crate::reference::activation::{act, act_grad, act_grad_from_output};
use crate::types::Activation;
use crate::types::Layout;

/// One task's GEMM: `C_t (m×n) = op(A_t)·op(B_t)` where each operand is a
/// row-major window of a flat buffer starting at its offset with its own
/// leading dimension (stored shapes follow the layout, as in `gemm`).
/// Bias and bias gradient, when used, are `n` values at `bias_offset`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TaskProblem {
    /// Rows of C_t.
    pub m: usize,
    /// Columns of C_t.
    pub n: usize,
    /// The reduced dimension.
    pub k: usize,
    /// First element of A_t in A's buffer.
    pub a_offset: usize,
    /// Row stride of A_t as stored, in elements.
    pub lda: usize,
    /// First element of B_t in B's buffer.
    pub b_offset: usize,
    /// Row stride of B_t as stored.
    pub ldb: usize,
    /// First element of C_t in C's buffer.
    pub c_offset: usize,
    /// Row stride of C_t.
    pub ldc: usize,
    /// First of the task's n bias (or bias-gradient) values.
    pub bias_offset: usize,
}

impl TaskProblem {
    /// Index of op(A)(row, kk) in A's buffer.
    pub fn a_index(&self, layout: Layout, row: usize, kk: usize) -> usize {
        if layout.trans_a() {
            self.a_offset + kk * self.lda + row
        } else {
            self.a_offset + row * self.lda + kk
        }
    }

    /// Index of op(B)(kk, col) in B's buffer.
    pub fn b_index(&self, layout: Layout, kk: usize, col: usize) -> usize {
        if layout.trans_b() {
            self.b_offset + col * self.ldb + kk
        } else {
            self.b_offset + kk * self.ldb + col
        }
    }

    /// Index of C(row, col) in C's buffer.
    pub fn c_index(&self, row: usize, col: usize) -> usize {
        self.c_offset + row * self.ldc + col
    }
}

/// The activation-derivative prologue of the reference: the scaled operand
/// is op(A) (`on_a`) or op(B), the derivative of `act` taken from `saved`
/// (laid out like the operand) as Z or, with `from_output`, as Y.
#[derive(Clone, Copy, Debug)]
pub struct RefPrologue<'a> {
    /// Scale op(A) (else op(B)).
    pub on_a: bool,
    /// Z or Y, laid out like the scaled operand.
    pub saved: &'a [f32],
    /// The activation whose derivative scales.
    pub act: Activation,
    /// `saved` holds Y = act(Z) rather than Z.
    pub from_output: bool,
}

impl RefPrologue<'_> {
    fn scale(&self, idx: usize) -> f64 {
        let s = self.saved[idx] as f64;
        if self.from_output {
            act_grad_from_output(self.act, s).expect("GELU needs Z")
        } else {
            act_grad(self.act, s)
        }
    }
}

/// Everything one task-GEMM call reads.
#[derive(Clone, Copy, Debug)]
pub struct TaskGemmProblem<'a> {
    /// Transposition of A and B (every task the same).
    pub layout: Layout,
    /// Each task's shapes and windows.
    pub tasks: &'a [TaskProblem],
    /// The flat A buffer.
    pub a: &'a [f32],
    /// The flat B buffer.
    pub b: &'a [f32],
    /// C before the call: windows not covered by a task keep it, and with
    /// `beta` it is accumulated into.
    pub c: &'a [f32],
    /// Scale of each product.
    pub alpha: f32,
    /// Accumulate: C = … + beta·C_old.
    pub beta: Option<f32>,
    /// The flat bias buffer (task t's at its `bias_offset`).
    pub bias: Option<&'a [f32]>,
    /// Activation of every output.
    pub act: Activation,
    /// Activation-derivative scaling of an operand.
    pub prologue: Option<RefPrologue<'a>>,
}

impl TaskGemmProblem<'_> {
    fn op_a(&self, t: &TaskProblem, row: usize, kk: usize) -> f64 {
        let idx = t.a_index(self.layout, row, kk);
        let v = self.a[idx] as f64;
        match self.prologue {
            Some(p) if p.on_a => v * p.scale(idx),
            _ => v,
        }
    }

    fn op_b(&self, t: &TaskProblem, kk: usize, col: usize) -> f64 {
        let idx = t.b_index(self.layout, kk, col);
        let v = self.b[idx] as f64;
        match self.prologue {
            Some(p) if !p.on_a => v * p.scale(idx),
            _ => v,
        }
    }
}

/// C after the call.
pub fn task_gemm(p: &TaskGemmProblem) -> Vec<f32> {
    let mut c = p.c.to_vec();
    for t in p.tasks {
        for row in 0..t.m {
            for col in 0..t.n {
                let acc: f64 = (0..t.k)
                    .map(|kk| p.op_a(t, row, kk) * p.op_b(t, kk, col))
                    .sum();
                let idx = t.c_index(row, col);
                let mut v = p.alpha as f64 * acc;
                if let Some(beta) = p.beta {
                    v += beta as f64 * p.c[idx] as f64;
                }
                if let Some(bias) = p.bias {
                    v += bias[t.bias_offset + col] as f64;
                }
                c[idx] = act(p.act, v) as f32;
            }
        }
    }
    c
}

/// The bias gradient: per task, the column sums of op(B) (after the
/// prologue), written over `db_before` at each task's bias offset.
pub fn task_bias_grad(p: &TaskGemmProblem, db_before: &[f32]) -> Vec<f32> {
    let mut db = db_before.to_vec();
    for t in p.tasks {
        for col in 0..t.n {
            let s: f64 = (0..t.k).map(|kk| p.op_b(t, kk, col)).sum();
            let idx = t.bias_offset + col;
            let mut v = p.alpha as f64 * s;
            if let Some(beta) = p.beta {
                v += beta as f64 * db_before[idx] as f64;
            }
            db[idx] = v as f32;
        }
    }
    db
}
