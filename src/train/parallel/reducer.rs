//! Summing the replicas' gradients: the `Reducer` trait, the in-process
//! `HostReducer`, and the fixed summation order both follow.
//!
//! The order: every process gathers every replica's vector, then sums
//! them element by element in global replica order (replica 0 first) in
//! f64, rounded to f32 once. It does not depend on message sizes, on the
//! MPI library's choice of algorithm or on timing, so reruns are
//! bit-identical and every process holds the same sum.

use crate::error::{Error, Result};

/// How the replicas' vectors travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// As f32 (exact: the default).
    #[default]
    F32,
    /// Rounded to f16 before the exchange (half the bytes; values past
    /// f16's range become ±inf and stop the run as a divergence),
    /// summed in f64 like F32.
    F16,
}

/// The gradient all-reduce between processes; within a process the
/// replicas' vectors are handed over together.
pub trait Reducer {
    /// This process's rank (0: the one that writes files).
    fn rank(&self) -> usize;
    /// Processes in the run.
    fn processes(&self) -> usize;
    /// The vectors of every process's replicas, gathered into global
    /// replica order (process 0's first). `local`: this process's
    /// replicas' vectors, all of one length, the same on every process.
    fn gather(&mut self, local: &[Vec<f32>], precision: Precision) -> Result<Vec<Vec<f32>>>;
    /// Process 0's `data` into every process's `data` (same length).
    fn broadcast(&mut self, data: &mut [f32]) -> Result<()>;
    /// Every process's `local` words, concatenated in rank order.
    fn gather_words(&mut self, local: &[u64]) -> Result<Vec<u64>>;
    /// Stops every process of the run at once (an error on one process
    /// must not leave the others waiting in a collective).
    fn abort(&self, code: i32) -> !;
}

/// One process: the replicas are all here.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostReducer;

impl Reducer for HostReducer {
    fn rank(&self) -> usize {
        0
    }

    fn processes(&self) -> usize {
        1
    }

    fn gather(&mut self, local: &[Vec<f32>], precision: Precision) -> Result<Vec<Vec<f32>>> {
        Ok(local.iter().map(|v| rounded(v, precision)).collect())
    }

    fn broadcast(&mut self, _data: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn gather_words(&mut self, local: &[u64]) -> Result<Vec<u64>> {
        Ok(local.to_vec())
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// `v` as it arrives at `precision`.
pub fn rounded(v: &[f32], precision: Precision) -> Vec<f32> {
    match precision {
        Precision::F32 => v.to_vec(),
        Precision::F16 => v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
    }
}

/// The element-wise sum of `parts` in their order, accumulated in f64
/// and rounded once (one part: returned exactly).
pub fn ordered_sum(parts: &[Vec<f32>]) -> Result<Vec<f32>> {
    let Some(first) = parts.first() else {
        return Err(Error::Internal {
            op: "all-reduce",
            detail: "no replica contributed".into(),
        });
    };
    if let Some(bad) = parts.iter().find(|p| p.len() != first.len()) {
        return Err(Error::Internal {
            op: "all-reduce",
            detail: format!(
                "replicas contributed {} and {} values: their models differ",
                first.len(),
                bad.len()
            ),
        });
    }
    let mut acc: Vec<f64> = first.iter().map(|&x| f64::from(x)).collect();
    for p in &parts[1..] {
        for (a, &x) in acc.iter_mut().zip(p) {
            *a += f64::from(x);
        }
    }
    Ok(acc.into_iter().map(|x| x as f32).collect())
}

/// FNV-1a over the bits of `values`: the cheap fingerprint replicas
/// compare to prove their parameters identical.
pub fn checksum(values: &[f32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sum_follows_replica_order_and_one_part_is_exact() {
        let a = vec![1.0f32, 1e-8, 0.1];
        assert_eq!(ordered_sum(std::slice::from_ref(&a)).unwrap(), a);
        let s = ordered_sum(&[vec![1.0, 2.0], vec![0.5, -2.0]]).unwrap();
        assert_eq!(s, vec![1.5, 0.0]);
        assert!(ordered_sum(&[vec![1.0], vec![1.0, 2.0]]).is_err());
        assert!(ordered_sum(&[]).is_err());
    }

    #[test]
    fn f16_rounding_keeps_about_three_digits() {
        let v = vec![0.1f32, -2.71, 1000.5];
        let r = rounded(&v, Precision::F16);
        for (a, b) in v.iter().zip(&r) {
            assert!((a - b).abs() <= a.abs() * 1e-3, "{a} {b}");
        }
        assert_ne!(checksum(&v), checksum(&r));
    }
}
