//! What an application embedding manytask needs, in one import:
//! `use manytask::prelude::*;`. The context, the model description, the
//! optimisers and task weightings, data, and the training layer.

pub use crate::data::batch::LastBatch;
pub use crate::data::dataset::{Dataset, Order, Split, SplitFractions};
pub use crate::error::{Error, Result};
pub use crate::gpu::{BackendChoice, GpuContext};
pub use crate::graph::{Program, StepOptions};
pub use crate::train::{
    Direction, EarlyStopping, EpochEvent, EvaluationEvent, Learner, Length, LrSchedule, Metrics,
    Monitor, Observer, ScheduleKind, StepEvent, TaskMetrics, TrainOptions, TrainReport, TrainState,
    Trainer,
};
pub use crate::types::{
    Activation, AdamW, ModelSpec, Optimizer, Sgd, Sharing, StitchOptions, TaskKind, TaskSpec,
    WeightInit,
};
pub use crate::weighting::Weighting;
