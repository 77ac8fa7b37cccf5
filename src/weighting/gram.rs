//! The T×T Gram matrix `M = G Gᵀ` of per-task gradients (`M_ij = g_i·g_j`),
//! checked once so that every solver can assume a finite, symmetric input.

use crate::{Error, Result};

/// Largest allowed asymmetry `|M_ij − M_ji|`, relative to the largest
/// diagonal entry: a GPU Gram in f32 can differ in the last bits between the
/// two triangles, a transposed or garbled buffer differs by far more.
pub const SYMMETRY_TOLERANCE: f64 = 1e-3;

/// A checked Gram matrix of `T ≥ 1` task gradients, stored in f64 and
/// symmetrised (`(M + Mᵀ)/2`).
#[derive(Clone, Debug, PartialEq)]
pub struct Gram {
    t: usize,
    // (T, T) row-major.
    m: Vec<f64>,
}

impl Gram {
    /// From `T·T` row-major f32 values, as read back from the GPU.
    pub fn from_f32(t: usize, values: &[f32]) -> Result<Gram> {
        let m: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        Gram::from_f64(t, m)
    }

    /// From `T·T` row-major f64 values. Errors when the length is not `T·T`,
    /// `T = 0`, an entry is not finite, a diagonal entry is negative, or the
    /// matrix is not symmetric within [`SYMMETRY_TOLERANCE`].
    pub fn from_f64(t: usize, values: Vec<f64>) -> Result<Gram> {
        const OP: &str = "Gram";
        if t == 0 {
            return Err(invalid(
                OP,
                "the Gram matrix needs at least one task".into(),
            ));
        }
        if values.len() != t * t {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "{} values for {t} tasks; a (T, T) Gram matrix needs T·T = {}",
                    values.len(),
                    t * t
                ),
            });
        }
        if let Some(k) = values.iter().position(|v| !v.is_finite()) {
            let detail = format!("entry ({}, {}) is {}", k / t, k % t, values[k]);
            return Err(invalid(OP, detail));
        }
        if let Some(i) = (0..t).find(|&i| values[i * t + i] < 0.0) {
            let detail = format!(
                "diagonal entry ({i}, {i}) = {} is negative; it is a squared gradient norm",
                values[i * t + i]
            );
            return Err(invalid(OP, detail));
        }
        let max_diag = (0..t).map(|i| values[i * t + i]).fold(0.0, f64::max);
        let mut m = values;
        for i in 0..t {
            for j in i + 1..t {
                let (a, b) = (m[i * t + j], m[j * t + i]);
                if (a - b).abs() > SYMMETRY_TOLERANCE * max_diag {
                    let detail = format!(
                        "not symmetric: M[{i}][{j}] = {a} but M[{j}][{i}] = {b} \
                         (largest diagonal {max_diag})"
                    );
                    return Err(invalid(OP, detail));
                }
                let mean = 0.5 * (a + b);
                m[i * t + j] = mean;
                m[j * t + i] = mean;
            }
        }
        Ok(Gram { t, m })
    }

    /// `G Gᵀ` of explicit gradient vectors (one per task, equal lengths):
    /// for tests and small host problems.
    pub fn from_gradients(grads: &[Vec<f64>]) -> Result<Gram> {
        let t = grads.len();
        if let Some(g) = grads.iter().find(|g| g.len() != grads[0].len()) {
            return Err(Error::Shape {
                op: "Gram::from_gradients",
                detail: format!(
                    "gradients of lengths {} and {}; all tasks need the same length",
                    grads[0].len(),
                    g.len()
                ),
            });
        }
        let mut m = vec![0.0; t * t];
        for i in 0..t {
            for j in 0..t {
                m[i * t + j] = dot(&grads[i], &grads[j]);
            }
        }
        Gram::from_f64(t, m)
    }

    /// Number of tasks T.
    pub fn tasks(&self) -> usize {
        self.t
    }

    /// `M_ij = g_i·g_j`.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.m[i * self.t + j]
    }

    /// Row-major (T, T) entries.
    pub fn as_slice(&self) -> &[f64] {
        &self.m
    }

    /// Gradient norms `‖g_t‖ = sqrt(M_tt)`.
    pub fn norms(&self) -> Vec<f64> {
        (0..self.t).map(|i| self.get(i, i).sqrt()).collect()
    }

    /// Largest `M_tt`: the scale against which solver tolerances are set.
    pub fn max_diagonal(&self) -> f64 {
        (0..self.t).map(|i| self.get(i, i)).fold(0.0, f64::max)
    }

    /// `M x`.
    pub fn mul(&self, x: &[f64]) -> Vec<f64> {
        self.m.chunks(self.t).map(|row| dot(row, x)).collect()
    }

    /// `xᵀ M y`, i.e. `(Σ x_i g_i)·(Σ y_j g_j)`.
    pub fn bilinear(&self, x: &[f64], y: &[f64]) -> f64 {
        dot(x, &self.mul(y))
    }

    /// The Gram of the rescaled gradients `g_t / n_t`: `M_ij / (n_i n_j)`.
    /// The caller guarantees `n_t > 0`.
    pub(crate) fn scaled(&self, n: &[f64]) -> Gram {
        let t = self.t;
        let m = (0..t * t)
            .map(|k| self.m[k] / (n[k / t] * n[k % t]))
            .collect();
        Gram { t, m }
    }

    /// Errors unless `values` has one entry per task.
    pub(crate) fn check_len(&self, op: &'static str, what: &str, values: &[f64]) -> Result<()> {
        if values.len() == self.t {
            return Ok(());
        }
        Err(Error::Shape {
            op,
            detail: format!(
                "{} {what} for a {t}-task Gram matrix",
                values.len(),
                t = self.t
            ),
        })
    }
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub(crate) fn invalid(op: &'static str, detail: String) -> Error {
    Error::InvalidInput { op, detail }
}
