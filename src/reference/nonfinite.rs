//! CPU reference for `shaders/nonfinite.wgsl`: the record of the first
//! step with a non-finite task loss, kept over a sequence of steps.
//!
//! The record is four words, `[first_step, first_task, first_kind,
//! nonfinite_steps]`: `first_step` 0 while empty; `first_kind` 1 NaN,
//! 2 +inf, 3 −inf; `nonfinite_steps` counts the steps with any non-finite
//! loss (saturating).

/// The record's words.
pub type Record = [u32; 4];

/// The record's code for a non-finite value; None when `x` is finite.
pub fn kind_code(x: f32) -> Option<u32> {
    if x.is_nan() {
        Some(1)
    } else if x == f32::INFINITY {
        Some(2)
    } else if x == f32::NEG_INFINITY {
        Some(3)
    } else {
        None
    }
}

/// One step: updates `record` from step `step`'s loss vector.
pub fn watch_losses(record: &mut Record, losses: &[f32], step: u32) {
    let mut first = None;
    for (task, &loss) in losses.iter().enumerate() {
        if let Some(code) = kind_code(loss) {
            first = Some((task as u32, code));
            break;
        }
    }
    let Some((task, code)) = first else {
        return;
    };
    record[3] = record[3].saturating_add(1);
    if record[0] == 0 {
        record[0] = step;
        record[1] = task;
        record[2] = code;
    }
}

/// The record after watching `steps` (step number, losses) in order,
/// starting from `initial`.
pub fn watch_sequence(initial: Record, steps: &[(u32, Vec<f32>)]) -> Record {
    let mut record = initial;
    for (step, losses) in steps {
        watch_losses(&mut record, losses, *step);
    }
    record
}
