//! A model's description: input width, how the tasks share parameters,
//! the tasks. `arch` builds the graph from it (`ModelSpec::build`).

use crate::types::{Activation, Regulariser, TaskSpec, WeightInit};

/// How the tasks share parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Sharing {
    /// A shared trunk of dense layers of these widths.
    Hard {
        /// Output width of each trunk layer, input side first.
        trunk: Vec<usize>,
    },
    /// Hard sharing whose whole trunk runs as ONE fully fused op per pass
    /// (`Graph::fused_trunk`: layer widths ≤ 128, any input width, ≤ 8
    /// layers; wider trunks are an error saying to use `Hard`). Same
    /// parameters and checkpoint names as `Hard`.
    HardFused {
        /// Output width of each trunk layer (each ≤ 128, ≤ 8 layers).
        trunk: Vec<usize>,
    },
    /// One column per task with these layer widths; a cross-stitch unit
    /// after each layer index in `stitch_after`.
    CrossStitch {
        /// Output width of each column layer (the same for every task).
        columns: Vec<usize>,
        /// 0-based layer indices followed by a cross-stitch unit.
        stitch_after: Vec<usize>,
        /// α's shape, initialisation and learning-rate multiplier.
        stitch: StitchOptions,
    },
    /// Columns of one width split into `subspaces` blocks, a (T·G)² stitch
    /// after every layer, the orthogonality penalty λ (0: off), and a layer
    /// stitch over all layers' outputs into the heads.
    Sluice {
        /// Column layer widths; all equal, divisible by `subspaces`.
        columns: Vec<usize>,
        /// Subspaces G per column layer.
        subspaces: usize,
        /// λ of the subspace orthogonality penalty (0: off; > 0 needs
        /// G ≥ 2).
        orthogonality: f32,
        /// α and β's initialisation and learning-rate multiplier.
        stitch: StitchOptions,
    },
    /// Columns regularised on every layer's stacked task weights.
    Soft {
        /// Output width of each column layer.
        columns: Vec<usize>,
        /// Applied to every column layer's stacked [T, in, out] weights
        /// (none with a single task).
        regularisers: Vec<Regulariser>,
    },
    /// Multi-gate mixture of experts (Ma et al. 2018): `experts.shared`
    /// experts on the input, a softmax gate per task over all of them
    /// computed from the input, each task's head fed Σ_e g_{t,e}(x) f_e(x).
    Mmoe {
        /// The experts (`per_task` must be 0).
        experts: Experts,
    },
    /// Customized gate control (Tang et al. 2020): `per_task` experts of
    /// each task's own and `shared` experts; task t's gate mixes its own
    /// and the shared ones. PLE with one level.
    Cgc {
        /// The experts (both counts ≥ 1).
        experts: Experts,
    },
    /// Progressive layered extraction (Tang et al. 2020): `levels` CGC
    /// levels; inner levels also have a shared gate over every expert,
    /// feeding the next level's shared experts, while task t's experts
    /// read task t's output of the level below.
    Ple {
        /// The experts of every level (both counts ≥ 1).
        experts: Experts,
        /// L ≥ 1 (1: CGC).
        levels: usize,
    },
    /// MMoE with DSelect-k gates (Hazimeh et al. 2021): per task, k
    /// binary-encoded selectors through a smooth step of width γ, mixed
    /// by softmax weights, all computed from the input; the selectors'
    /// entropy (mean over rows, weight λ) pushes them to pick one expert
    /// each.
    DSelectK {
        /// The experts (`per_task` must be 0; ≤ 64 shared).
        experts: Experts,
        /// k: selectors per task (1..=8).
        selectors: usize,
        /// γ > 0: the smooth step's width.
        gamma: f32,
        /// λ ≥ 0 of the entropy regulariser.
        entropy: f32,
    },
}

/// Most selectors per task of a DSelect-k gate.
pub const MAX_SELECTORS: usize = 8;
/// Most experts of a DSelect-k gate (2^6: six bits per selector).
pub const MAX_DSELECT_EXPERTS: usize = 64;

/// The experts and gates of a mixture-of-experts model (MMoE, CGC, PLE).
/// Every expert is an MLP of `expert_widths` on the model's input (or
/// the level below); layer l of every expert runs as ONE op.
#[derive(Clone, Debug, PartialEq)]
pub struct Experts {
    /// Output width of each expert layer (the experts' output: the last).
    pub widths: Vec<usize>,
    /// Es: experts of each task's own (CGC / PLE; 0 for MMoE).
    pub per_task: usize,
    /// Ss: experts every task's gate sees (MMoE: all E experts).
    pub shared: usize,
}

/// α (and β) of cross-stitch and sluice units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StitchOptions {
    /// One T×T α per channel instead of per layer.
    pub per_channel: bool,
    /// α's diagonal p (off-diagonal (1 − p)/(T − 1)); `None`: all ones
    /// (LibMTL's init).
    pub diagonal: Option<f32>,
    /// Learning-rate multiplier of α and β.
    pub lr_scale: f32,
}

impl Default for StitchOptions {
    /// Misra et al.'s p = 0.9 per layer. Their α also learns faster (10³×
    /// with SGD); the default multiplier is 1 because the right factor
    /// depends on the optimiser (AdamW already rescales per parameter).
    fn default() -> Self {
        StitchOptions {
            per_channel: false,
            diagonal: Some(0.9),
            lr_scale: 1.0,
        }
    }
}

/// A whole model: batch rows, input width, sharing, tasks.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Rows of every batch (the program's buffers are planned for it).
    pub rows: usize,
    /// Features per row: x is [rows, inputs].
    pub inputs: usize,
    /// Activation of every hidden layer (trunk, columns, hidden head
    /// layers); output layers are linear (the loss applies softmax or
    /// sigmoid).
    pub activation: Activation,
    /// How the tasks share parameters.
    pub sharing: Sharing,
    /// The tasks, in logit-column and loss order (≥ 1).
    pub tasks: Vec<TaskSpec>,
    /// How dense weights and biases start (`WeightInit::default()`:
    /// PyTorch's `nn.Linear` init).
    pub init: WeightInit,
}
