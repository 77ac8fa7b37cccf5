//! CPU references for `shaders/optim.wgsl` (shared/MATH.md §6), computed
//! in f64 and rounded once per stored value.

/// SGD with momentum μ and weight decay (coupled, added to the gradient).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum μ (0: plain SGD).
    pub momentum: f32,
    /// L2 coefficient added to the gradient (coupled).
    pub weight_decay: f32,
}

/// AdamW: Adam with bias correction and decoupled weight decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first-moment estimate.
    pub beta1: f32,
    /// Decay of the second-moment estimate.
    pub beta2: f32,
    /// Added to √v̂ in the denominator.
    pub eps: f32,
    /// Decoupled decay: θ −= lr·weight_decay·θ each step.
    pub weight_decay: f32,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

impl AdamW {
    /// (1 − β1^t, 1 − β2^t) for step t ≥ 1.
    pub fn bias_corrections(&self, step: u32) -> (f64, f64) {
        (
            1.0 - (self.beta1 as f64).powi(step as i32),
            1.0 - (self.beta2 as f64).powi(step as i32),
        )
    }
}

/// One SGD step on (θ, v) in place; θ, g, v: (n,)
pub fn sgd_step(cfg: &Sgd, theta: &mut [f32], grad: &[f32], velocity: &mut [f32]) {
    for i in 0..theta.len() {
        let t = theta[i] as f64;
        let v =
            cfg.momentum as f64 * velocity[i] as f64 + grad[i] as f64 + cfg.weight_decay as f64 * t;
        velocity[i] = v as f32;
        theta[i] = (t - cfg.lr as f64 * v as f32 as f64) as f32;
    }
}

/// One AdamW step t (≥ 1) on (θ, m, v) in place; all (n,)
pub fn adamw_step(
    cfg: &AdamW,
    step: u32,
    theta: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let (bc1, bc2) = cfg.bias_corrections(step);
    let (b1, b2) = (cfg.beta1 as f64, cfg.beta2 as f64);
    for i in 0..theta.len() {
        let g = grad[i] as f64;
        let t = theta[i] as f64;
        let mi = (b1 * m[i] as f64 + (1.0 - b1) * g) as f32;
        let vi = (b2 * v[i] as f64 + (1.0 - b2) * g * g) as f32;
        m[i] = mi;
        v[i] = vi;
        let update = (mi as f64 / bc1) / ((vi as f64 / bc2).sqrt() + cfg.eps as f64)
            + cfg.weight_decay as f64 * t;
        theta[i] = (t - cfg.lr as f64 * update) as f32;
    }
}
