//! Tasks: what each predicts (and so its loss and width), and its head.

use crate::types::{LossKind, Reduction};

/// What a task predicts, and so its loss and logit width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// One of `classes` (softmax cross-entropy; u32 labels).
    Classification {
        /// Number of classes: the task's logit width.
        classes: usize,
    },
    /// `outputs` real targets (mean squared error).
    Regression {
        /// Number of real outputs: the task's logit width.
        outputs: usize,
    },
    /// `labels` independent yes/no labels (BCE with logits; 0/1 targets).
    Binary {
        /// Number of labels: the task's logit width.
        labels: usize,
    },
}

impl TaskKind {
    /// The task's logit columns: classes, outputs or labels.
    pub fn width(&self) -> usize {
        match *self {
            TaskKind::Classification { classes } => classes,
            TaskKind::Regression { outputs } => outputs,
            TaskKind::Binary { labels } => labels,
        }
    }

    /// The loss the task trains with (softmax CE, MSE or BCE).
    pub fn loss(&self) -> LossKind {
        match self {
            TaskKind::Classification { .. } => LossKind::SoftmaxCrossEntropy,
            TaskKind::Regression { .. } => LossKind::MeanSquaredError,
            TaskKind::Binary { .. } => LossKind::BinaryCrossEntropy,
        }
    }
}

/// One task: its head (hidden widths, then the output layer) and loss.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpec {
    /// Unique, non-empty, no dots or spaces: it names the head's
    /// checkpoint tensors (`heads.{name}.{j}`) and matches the data's task.
    pub name: String,
    /// What the task predicts (and so its loss and output width).
    pub kind: TaskKind,
    /// Hidden layer widths of the head (empty: one output layer).
    pub hidden: Vec<usize>,
    /// Whether labels can be missing (a mask row per sample).
    pub masked: bool,
    /// How the loss reduces the task's outputs (`Reduction::Mean`, PyTorch's
    /// default, unless set; classification takes only the mean, binary
    /// the mean or the sum).
    pub reduction: Reduction,
    /// An adversarial auxiliary task (Ganin & Lempitsky 2015): its head
    /// reads the shared trunk through a gradient reversal, so the head
    /// learns to predict the task while the trunk learns to hide what the
    /// task needs. λ comes from `Program::set_reversal_lambda` (the CLI
    /// follows `graph::ReversalSchedule`). Hard sharing only.
    pub adversarial: bool,
}

impl TaskSpec {
    /// A task with these head hidden widths, labels never missing
    /// (`masked: false`), the mean reduction, not adversarial.
    pub fn new(name: &str, kind: TaskKind, hidden: &[usize]) -> Self {
        TaskSpec {
            name: name.to_string(),
            kind,
            hidden: hidden.to_vec(),
            masked: false,
            reduction: Reduction::Mean,
            adversarial: false,
        }
    }

    /// The same task with the loss reduction `reduction`.
    pub fn with_reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The same task as an adversarial auxiliary task (`adversarial`).
    pub fn adversarial(mut self) -> Self {
        self.adversarial = true;
        self
    }
}
