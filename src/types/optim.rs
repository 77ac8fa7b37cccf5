//! Optimiser hyper-parameters: what `shaders/optim.wgsl` and its
//! reference `reference::optim` implement.

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

/// The optimiser a program applies after backward (one dispatch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// SGD with momentum and weight decay.
    Sgd(Sgd),
    /// AdamW (decoupled weight decay), bias-corrected by the step count.
    AdamW(AdamW),
}
