//! Shards of a global batch: which rows each replica takes, the rows
//! themselves, and each replica's share of every task's labelled rows.
//!
//! A task's loss is the mean over its labelled rows, so the gradient of
//! the global batch's mean is Σ_r (n_rt / N_t)·∇L_rt, where n_rt counts
//! task t's labelled rows in replica r's shard and N_t = Σ_r n_rt: each
//! replica weighs task t by that share, and a plain sum of the replicas'
//! gradients is the global gradient, shards of unequal size included.

use std::ops::Range;

use crate::data::batch::Batch;
use crate::error::{Error, Result};

/// The rows of a global batch of `rows` rows each of `replicas`
/// replicas takes, in replica order: `rows / replicas` each, the first
/// `rows % replicas` one more. Every replica needs at least one row.
pub fn shard_rows(rows: usize, replicas: usize) -> Result<Vec<Range<usize>>> {
    if replicas == 0 || rows < replicas {
        return Err(Error::InvalidInput {
            op: "data-parallel training",
            detail: format!(
                "a global batch of {rows} rows cannot be shared by {replicas} replicas: every \
                 replica needs at least one row (raise the batch size or use fewer replicas)"
            ),
        });
    }
    let (base, extra) = (rows / replicas, rows % replicas);
    let mut start = 0;
    Ok((0..replicas)
        .map(|r| {
            let len = base + usize::from(r < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .collect())
}

/// The rows `range` of `batch`, as a batch of `range.len()` rows.
pub fn shard(batch: &Batch, range: Range<usize>) -> Batch {
    let rows = batch.rows;
    let len = range.len();
    // [rows, k] arrays: a contiguous block of rows.
    let row_major = |v: &[f32]| {
        let k = v.len() / rows.max(1);
        v[range.start * k..range.end * k].to_vec()
    };
    // [k, rows] arrays: the range of every one of the k rows.
    fn task_major<T: Copy>(v: &[T], rows: usize, range: &Range<usize>) -> Vec<T> {
        v.chunks(rows.max(1))
            .flat_map(|r| r[range.clone()].iter().copied())
            .collect()
    }
    Batch {
        rows: len,
        real_rows: batch.real_rows.saturating_sub(range.start).min(len),
        x: row_major(&batch.x),
        labels: batch.labels.as_ref().map(|l| task_major(l, rows, &range)),
        targets: batch.targets.as_ref().map(|t| row_major(t)),
        masks: batch.masks.as_ref().map(|m| task_major(m, rows, &range)),
    }
}

/// Task t's labelled rows in `range` of `batch`: the mask's sum for a
/// masked task, every row for the others (`masked[t]`).
pub fn labelled_rows(batch: &Batch, range: &Range<usize>, masked: &[bool]) -> Vec<f64> {
    masked
        .iter()
        .enumerate()
        .map(|(t, &m)| match (&batch.masks, m) {
            (Some(masks), true) => masks[t * batch.rows..][range.clone()]
                .iter()
                .map(|&v| f64::from(v))
                .sum(),
            _ => range.len() as f64,
        })
        .collect()
}

/// Per replica, per task: n_rt / N_t (0 where the task has no labelled
/// row in the whole batch), for `shards` of `batch`.
pub fn task_shares(batch: &Batch, shards: &[Range<usize>], masked: &[bool]) -> Vec<Vec<f32>> {
    let counts: Vec<Vec<f64>> = shards
        .iter()
        .map(|r| labelled_rows(batch, r, masked))
        .collect();
    let totals: Vec<f64> = (0..masked.len())
        .map(|t| counts.iter().map(|c| c[t]).sum())
        .collect();
    counts
        .iter()
        .map(|c| {
            c.iter()
                .zip(&totals)
                .map(|(&n, &total)| if total > 0.0 { (n / total) as f32 } else { 0.0 })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order_with_the_remainder_first() {
        let s = shard_rows(7, 3).unwrap();
        assert_eq!(s, vec![0..3, 3..5, 5..7]);
        assert_eq!(shard_rows(4, 4).unwrap().len(), 4);
        let e = shard_rows(2, 3).unwrap_err().to_string();
        assert!(e.contains("at least one row"), "{e}");
    }

    #[test]
    fn a_shard_keeps_its_rows_of_every_array() {
        // 3 rows, 2 features, 1 class task, 2 target columns, 2 masks.
        let b = Batch {
            rows: 3,
            real_rows: 2,
            x: vec![0., 1., 10., 11., 20., 21.],
            labels: Some(vec![5, 6, 7]),
            targets: Some(vec![0.5, 0.6, 1.5, 1.6, 2.5, 2.6]),
            masks: Some(vec![1., 1., 0., 0., 1., 0.]),
        };
        let s = shard(&b, 1..3);
        assert_eq!(s.rows, 2);
        assert_eq!(s.real_rows, 1);
        assert_eq!(s.x, vec![10., 11., 20., 21.]);
        assert_eq!(s.labels, Some(vec![6, 7]));
        assert_eq!(s.targets, Some(vec![1.5, 1.6, 2.5, 2.6]));
        assert_eq!(s.masks, Some(vec![1., 0., 1., 0.]));
        let shares = task_shares(&b, &[0..1, 1..3], &[true, true]);
        assert_eq!(shares, vec![vec![0.5, 0.0], vec![0.5, 1.0]]);
        // Unmasked tasks count every row.
        let shares = task_shares(&b, &[0..1, 1..3], &[false, true]);
        assert_eq!(shares[0][0], 1.0 / 3.0);
    }
}
