//! The shapes the trace norm works on: a layer's stacked task weights,
//! which unfoldings of them are summed, and each unfolding's matrix.

/// A layer's per-task weights as stored: every task's [inputs, outputs]
/// block one after another, [T, in, out] row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskStack {
    /// T.
    pub tasks: usize,
    /// Rows of each task's block.
    pub inputs: usize,
    /// Columns of each task's block.
    pub outputs: usize,
}

impl TaskStack {
    /// T blocks of d weights with no known layer shape ([T, 1, d]).
    pub fn flat(tasks: usize, d: usize) -> Self {
        TaskStack {
            tasks,
            inputs: 1,
            outputs: d,
        }
    }

    /// Elements, T·in·out.
    pub fn len(&self) -> usize {
        self.tasks * self.inputs * self.outputs
    }

    /// Whether it holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which unfoldings of 𝒲 the trace norm sums (module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TraceNormVariant {
    /// LAF: ‖unfold_T‖_* alone, on the storage [T, in·out].
    #[default]
    LastAxis,
    /// The sum over all three unfoldings (T, in, out).
    Tucker,
    /// Tensor train: the unfoldings [in, out·T] and [in·out, T].
    TensorTrain,
}

impl TraceNormVariant {
    /// The three variants.
    pub const ALL: [TraceNormVariant; 3] = [
        TraceNormVariant::LastAxis,
        TraceNormVariant::Tucker,
        TraceNormVariant::TensorTrain,
    ];

    /// The unfoldings whose nuclear norms it sums.
    pub fn unfoldings(self) -> &'static [Unfolding] {
        match self {
            TraceNormVariant::LastAxis => &[Unfolding::Tasks],
            TraceNormVariant::Tucker => &[Unfolding::Tasks, Unfolding::Inputs, Unfolding::Outputs],
            TraceNormVariant::TensorTrain => &[Unfolding::Tasks, Unfolding::Inputs],
        }
    }

    /// "laf", "tucker" or "tt".
    pub fn name(self) -> &'static str {
        match self {
            TraceNormVariant::LastAxis => "laf",
            TraceNormVariant::Tucker => "tucker",
            TraceNormVariant::TensorTrain => "tt",
        }
    }
}

/// One matrix view of [T, in, out] with the same nuclear norm as an
/// unfolding of docs/math.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfolding {
    /// [T, in·out]: the storage (unfold_T; TT's [in·out, T] transposed).
    Tasks,
    /// [in, T·out]: the storage with T and in swapped (unfold_in; TT's
    /// [in, out·T] up to column order).
    Inputs,
    /// [T·in, out]: the storage, = unfold_outᵀ up to column order.
    Outputs,
}

impl Unfolding {
    /// (rows, cols) of the matrix.
    pub fn matrix(self, s: TaskStack) -> (usize, usize) {
        match self {
            Unfolding::Tasks => (s.tasks, s.inputs * s.outputs),
            Unfolding::Inputs => (s.inputs, s.tasks * s.outputs),
            Unfolding::Outputs => (s.tasks * s.inputs, s.outputs),
        }
    }
}
