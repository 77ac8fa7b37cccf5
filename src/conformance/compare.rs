//! Element-by-element comparison against a reference.

/// Passes when `|got - want| <= abs + rel * |want|` for every element.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute slack.
    pub abs: f64,
    /// Slack relative to |want|.
    pub rel: f64,
}

impl Tolerance {
    /// Bit-for-bit (up to the sign of zero).
    pub const EXACT: Tolerance = Tolerance { abs: 0.0, rel: 0.0 };

    /// `abs + rel·|want|`.
    pub const fn new(abs: f64, rel: f64) -> Self {
        Tolerance { abs, rel }
    }
}

/// The worst element, for the failure message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mismatch {
    /// Flat index of the element.
    pub index: usize,
    /// The GPU's value.
    pub got: f32,
    /// The reference's value.
    pub want: f32,
}

/// The result of one comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// max |got − want| over all elements.
    pub max_abs_err: f64,
    /// max |got - want| / |want| over elements with want != 0.
    pub max_rel_err: f64,
    /// Every element within tolerance, lengths equal, no stray NaN.
    pub pass: bool,
    /// The element furthest outside its tolerance (or the largest error
    /// when all pass); None for empty outputs.
    pub worst: Option<Mismatch>,
    /// Elements compared.
    pub elements: usize,
}

/// Compares `got` with `want`. A length difference, a NaN where the
/// reference has none, or any element out of tolerance fails.
pub fn compare(got: &[f32], want: &[f32], tol: Tolerance) -> Outcome {
    let mut out = Outcome {
        max_abs_err: 0.0,
        max_rel_err: 0.0,
        pass: got.len() == want.len(),
        worst: None,
        elements: want.len(),
    };
    if !out.pass {
        out.max_abs_err = f64::INFINITY;
        out.max_rel_err = f64::INFINITY;
        return out;
    }
    // How far past its allowance the worst element is (≤ 0 passes).
    let mut worst_excess = f64::NEG_INFINITY;
    for (index, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g64, w64) = (g as f64, w as f64);
        let err = if g.is_nan() || w.is_nan() {
            if g.is_nan() && w.is_nan() {
                0.0
            } else {
                f64::INFINITY
            }
        } else if g64 == w64 {
            0.0 // also equal infinities
        } else {
            (g64 - w64).abs()
        };
        let rel = if w64 != 0.0 { err / w64.abs() } else { 0.0 };
        out.max_abs_err = out.max_abs_err.max(err);
        out.max_rel_err = out.max_rel_err.max(rel);
        let allowed = tol.abs + tol.rel * w64.abs();
        let excess = if err == 0.0 {
            f64::NEG_INFINITY
        } else {
            err - allowed
        };
        if excess > 0.0 || err.is_nan() {
            out.pass = false;
        }
        if excess > worst_excess || out.worst.is_none() {
            worst_excess = excess.max(worst_excess);
            out.worst = Some(Mismatch {
                index,
                got: g,
                want: w,
            });
        }
    }
    out
}
