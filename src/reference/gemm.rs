//! CPU reference for `shaders/gemm.wgsl`: plain triple loops, accumulated
//! in f64.

use crate::reference::activation::act;
use crate::types::{Activation, Layout};

/// One (possibly batched) GEMM problem on host arrays.
/// A is (batch?, M, K) or (batch?, K, M) when transposed; B is (batch?, K, N)
/// or (batch?, N, K); a non-batched operand is shared by every batch.
pub struct GemmProblem<'a> {
    /// Which operands are stored transposed.
    pub layout: Layout,
    /// Independent products (≥ 1).
    pub batch: usize,
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// The reduced dimension.
    pub k: usize,
    /// A's values.
    pub a: &'a [f32],
    /// A holds one matrix per batch entry (else one shared).
    pub a_batched: bool,
    /// B's values.
    pub b: &'a [f32],
    /// B holds one matrix per batch entry (else one shared).
    pub b_batched: bool,
    /// Scale of the product.
    pub alpha: f32,
    /// (beta, C before the call): (batch, M, N).
    pub beta: Option<(f32, &'a [f32])>,
    /// (bias, batched): (batch?, N).
    pub bias: Option<(&'a [f32], bool)>,
    /// Activation applied last.
    pub act: Activation,
}

impl GemmProblem<'_> {
    fn a_at(&self, z: usize, row: usize, kk: usize) -> f64 {
        let base = if self.a_batched {
            z * self.m * self.k
        } else {
            0
        };
        let idx = if self.layout.trans_a() {
            kk * self.m + row
        } else {
            row * self.k + kk
        };
        self.a[base + idx] as f64
    }

    fn b_at(&self, z: usize, kk: usize, col: usize) -> f64 {
        let base = if self.b_batched {
            z * self.k * self.n
        } else {
            0
        };
        let idx = if self.layout.trans_b() {
            col * self.k + kk
        } else {
            kk * self.n + col
        };
        self.b[base + idx] as f64
    }
}

/// C: (batch, M, N) = act(alpha·op(A)·op(B) + beta·C + bias)
pub fn gemm(p: &GemmProblem) -> Vec<f32> {
    let mut c = vec![0f32; p.batch * p.m * p.n];
    for z in 0..p.batch {
        for row in 0..p.m {
            for col in 0..p.n {
                let mut acc = 0f64;
                for kk in 0..p.k {
                    acc += p.a_at(z, row, kk) * p.b_at(z, kk, col);
                }
                let idx = (z * p.m + row) * p.n + col;
                let mut v = p.alpha as f64 * acc;
                if let Some((beta, old)) = p.beta {
                    v += beta as f64 * old[idx] as f64;
                }
                if let Some((bias, batched)) = p.bias {
                    v += bias[if batched { z * p.n + col } else { col }] as f64;
                }
                c[idx] = act(p.act, v) as f32;
            }
        }
    }
    c
}

/// max over outputs of Σ_k |op(A)_ik · op(B)_kj|: the scale of a dot
/// product's rounding error.
pub fn max_abs_product_sum(p: &GemmProblem) -> f64 {
    let mut worst = 0f64;
    for z in 0..p.batch {
        for row in 0..p.m {
            for col in 0..p.n {
                let s: f64 = (0..p.k)
                    .map(|kk| (p.a_at(z, row, kk) * p.b_at(z, kk, col)).abs())
                    .sum();
                worst = worst.max(s);
            }
        }
    }
    worst
}
