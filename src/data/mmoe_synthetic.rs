//! The synthetic two-task regression of MMoE's paper (Ma et al. 2018,
//! §3.2), whose task correlation p is set by hand:
//!
//! 1. u₁, u₂ ∈ R^d orthonormal;
//! 2. w₁ = c·u₁ and w₂ = c·(p·u₁ + √(1 − p²)·u₂), so cos(w₁, w₂) = p;
//! 3. x ~ N(0, I_d);
//! 4. y_t = w_tᵀx + Σ_{i<m} sin(α_i·w_tᵀx + β_i) + ε_t, ε_t ~ N(0, σ²).
//!
//! The sines make the tasks non-linear, so that a label correlation near
//! p does not make them the same regression. Choices the paper leaves
//! open, made here and fixed by the seed: u₁, u₂ by Gram–Schmidt on two
//! N(0, I) draws; α_i, β_i ~ N(0, 1), the same for both tasks (as the
//! paper has it); σ = 0.1 (variance 0.01) unless `noise` says otherwise.
//! The tasks are named `task0` and `task1`, one output each.

use crate::data::dataset::{Dataset, Targets, TaskData};
use crate::error::{Error, Result};
use crate::util::rng::Rng;

/// The most values (samples × inputs) `generate` makes: 2^28 (1 GiB of
/// f32), checked before allocating.
pub const MAX_VALUES: u128 = 1 << 28;

/// The benchmark's definition (not its samples).
#[derive(Clone, Debug, PartialEq)]
pub struct MmoeSyntheticSpec {
    /// Input width d (100 by default).
    pub inputs: usize,
    /// The cosine p between the two tasks' weight vectors, in [−1, 1].
    pub correlation: f32,
    /// Sine terms m (10 by default).
    pub sines: usize,
    /// The weight vectors' length c (1 by default).
    pub scale: f32,
    /// The label noise's standard deviation σ (0.1 by default).
    pub noise: f32,
    /// Seed of u₁, u₂, α, β, the inputs and the noise.
    pub seed: u64,
}

impl MmoeSyntheticSpec {
    /// The defaults above at correlation `p`.
    pub fn new(correlation: f32, seed: u64) -> Self {
        MmoeSyntheticSpec {
            inputs: 100,
            correlation,
            sines: 10,
            scale: 1.0,
            noise: 0.1,
            seed,
        }
    }

    /// An error naming the first value out of range.
    pub fn check(&self) -> Result<()> {
        let bad = |detail: String| {
            Err(Error::InvalidInput {
                op: "mmoe_synthetic",
                detail,
            })
        };
        if self.inputs < 2 {
            return bad(format!(
                "inputs = {}: two orthogonal weight vectors need at least 2 inputs",
                self.inputs
            ));
        }
        if !(-1.0..=1.0).contains(&self.correlation) {
            return bad(format!(
                "correlation = {}: a cosine, expected −1 ≤ p ≤ 1",
                self.correlation
            ));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return bad(format!("scale = {}: expected a finite c > 0", self.scale));
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return bad(format!("noise = {}: expected a finite σ ≥ 0", self.noise));
        }
        Ok(())
    }

    /// The two tasks' weight vectors w₁, w₂ (each of length d).
    pub fn weights(&self) -> [Vec<f64>; 2] {
        self.draw(&mut Rng::new(self.seed)).0
    }

    /// w₁, w₂, then α and β, drawn in this order from `rng`.
    fn draw(&self, rng: &mut Rng) -> ([Vec<f64>; 2], Vec<f64>, Vec<f64>) {
        let d = self.inputs;
        let mut draw_vec = || -> Vec<f64> { (0..d).map(|_| rng.normal() as f64).collect() };
        let (a, b) = (draw_vec(), draw_vec());
        let u1 = unit(a);
        // b minus its projection on u1 (Gram–Schmidt), normalised.
        let along = dot(&b, &u1);
        let u2 = unit(b.iter().zip(&u1).map(|(x, u)| x - along * u).collect());
        let (c, p) = (self.scale as f64, self.correlation as f64);
        let q = (1.0 - p * p).max(0.0).sqrt();
        let w1 = u1.iter().map(|u| c * u).collect();
        let w2 = u1
            .iter()
            .zip(&u2)
            .map(|(a, b)| c * (p * a + q * b))
            .collect();
        let alpha = (0..self.sines).map(|_| rng.normal() as f64).collect();
        let beta = (0..self.sines).map(|_| rng.normal() as f64).collect();
        ([w1, w2], alpha, beta)
    }

    /// `rows` samples as a dataset named "mmoe_synthetic"; the same
    /// (spec, rows) always gives the same data.
    pub fn generate(&self, rows: usize) -> Result<Dataset> {
        self.check()?;
        if rows == 0 {
            return Err(Error::InvalidInput {
                op: "mmoe_synthetic",
                detail: "samples = 0: expected at least 1".into(),
            });
        }
        let values = (rows as u128) * (self.inputs as u128);
        if values > MAX_VALUES {
            return Err(Error::InvalidInput {
                op: "mmoe_synthetic",
                detail: format!(
                    "{rows} samples × {} inputs = {values} values, past the generator's limit of \
                     {MAX_VALUES}: use fewer samples or inputs",
                    self.inputs
                ),
            });
        }
        let mut rng = Rng::new(self.seed);
        let (w, alpha, beta) = self.draw(&mut rng);
        let d = self.inputs;
        let mut x = Vec::with_capacity(rows * d);
        let mut y = [Vec::with_capacity(rows), Vec::with_capacity(rows)];
        for _ in 0..rows {
            let start = x.len();
            x.extend((0..d).map(|_| rng.normal()));
            let xr: Vec<f64> = x[start..].iter().map(|&v| v as f64).collect();
            for (t, wt) in w.iter().enumerate() {
                let z = dot(wt, &xr);
                let sines: f64 = alpha
                    .iter()
                    .zip(&beta)
                    .map(|(a, b)| (a * z + b).sin())
                    .sum();
                let noise = rng.normal() as f64 * self.noise as f64;
                y[t].push((z + sines + noise) as f32);
            }
        }
        let tasks = y
            .into_iter()
            .enumerate()
            .map(|(t, values)| {
                TaskData::new(
                    &format!("task{t}"),
                    Targets::Real { outputs: 1, values },
                    None,
                )
            })
            .collect();
        Dataset::new("mmoe_synthetic", rows, d, x, tasks)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `v` over its length (a zero vector, which N(0, I) draws never give
/// in practice, stays zero).
fn unit(v: Vec<f64>) -> Vec<f64> {
    let n = dot(&v, &v).sqrt();
    if n > 0.0 {
        v.into_iter().map(|x| x / n).collect()
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pearson(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (
            a.iter().map(|&v| v as f64).sum::<f64>() / n,
            b.iter().map(|&v| v as f64).sum::<f64>() / n,
        );
        let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
        for (x, y) in a.iter().zip(b) {
            let (x, y) = (*x as f64 - ma, *y as f64 - mb);
            sab += x * y;
            saa += x * x;
            sbb += y * y;
        }
        sab / (saa * sbb).sqrt()
    }

    fn targets(d: &Dataset, t: usize) -> &[f32] {
        match &d.tasks()[t].targets {
            Targets::Real { values, .. } => values,
            _ => unreachable!("regression targets"),
        }
    }

    #[test]
    fn the_weight_vectors_have_length_c_and_cosine_p() {
        for p in [-1.0, -0.3, 0.0, 0.5, 0.9, 1.0] {
            let spec = MmoeSyntheticSpec {
                scale: 2.5,
                ..MmoeSyntheticSpec::new(p, 7)
            };
            let [w1, w2] = spec.weights();
            let (n1, n2) = (dot(&w1, &w1).sqrt(), dot(&w2, &w2).sqrt());
            assert!(
                (n1 - 2.5).abs() < 1e-9 && (n2 - 2.5).abs() < 1e-9,
                "{n1} {n2}"
            );
            let cos = dot(&w1, &w2) / (n1 * n2);
            assert!((cos - p as f64).abs() < 1e-9, "p = {p}: cos {cos}");
        }
    }

    #[test]
    fn label_correlation_follows_p_and_the_seed_fixes_the_data() {
        let make = |p: f32, seed| MmoeSyntheticSpec::new(p, seed).generate(4000).unwrap();
        let same = make(1.0, 3);
        // p = 1: the same regression, only the noise differs.
        assert!(pearson(targets(&same, 0), targets(&same, 1)) > 0.95);
        let half = make(0.5, 3);
        let r = pearson(targets(&half, 0), targets(&half, 1));
        assert!((0.2..0.8).contains(&r), "p = 0.5: label correlation {r}");
        let none = make(0.0, 3);
        assert!(pearson(targets(&none, 0), targets(&none, 1)).abs() < 0.2);
        let again = make(0.5, 3);
        assert_eq!(half.x(), again.x());
        assert_eq!(targets(&half, 1), targets(&again, 1));
        assert_ne!(make(0.5, 4).x(), half.x());
    }

    #[test]
    fn bad_values_are_refused_before_generating() {
        let base = MmoeSyntheticSpec::new(0.5, 0);
        for (spec, what) in [
            (
                MmoeSyntheticSpec {
                    correlation: 1.5,
                    ..base.clone()
                },
                "correlation",
            ),
            (
                MmoeSyntheticSpec {
                    correlation: f32::NAN,
                    ..base.clone()
                },
                "correlation",
            ),
            (
                MmoeSyntheticSpec {
                    inputs: 1,
                    ..base.clone()
                },
                "inputs",
            ),
            (
                MmoeSyntheticSpec {
                    scale: 0.0,
                    ..base.clone()
                },
                "scale",
            ),
            (
                MmoeSyntheticSpec {
                    noise: -1.0,
                    ..base.clone()
                },
                "noise",
            ),
        ] {
            let e = spec.generate(10).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
        assert!(base.generate(0).is_err());
        let e = MmoeSyntheticSpec {
            inputs: 1 << 20,
            ..base
        }
        .generate(1 << 20)
        .unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
    }
}
