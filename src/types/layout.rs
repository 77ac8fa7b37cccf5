//! GEMM operand layouts: which operands are stored transposed.

use std::fmt;

/// Which operands are stored transposed: `C = op(A)·op(B)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layout {
    /// A: M×K, B: K×N (forward, `Y = X·W`).
    NN,
    /// A: M×K, B stored N×K (`dX = D·Wᵀ`).
    NT,
    /// A stored K×M, B: K×N (`dW = Xᵀ·D`).
    TN,
    /// A stored K×M, B stored N×K.
    TT,
}

impl Layout {
    /// The four layouts.
    pub const ALL: [Layout; 4] = [Layout::NN, Layout::NT, Layout::TN, Layout::TT];

    /// Whether A is stored transposed (K×M).
    pub fn trans_a(self) -> bool {
        matches!(self, Layout::TN | Layout::TT)
    }
    /// Whether B is stored transposed (N×K).
    pub fn trans_b(self) -> bool {
        matches!(self, Layout::NT | Layout::TT)
    }
    /// (rows, cols) A is stored as, for op(A) of M×K.
    pub fn a_stored(self, m: usize, k: usize) -> (usize, usize) {
        if self.trans_a() {
            (k, m)
        } else {
            (m, k)
        }
    }

    /// (rows, cols) B is stored as, for op(B) of K×N.
    pub fn b_stored(self, k: usize, n: usize) -> (usize, usize) {
        if self.trans_b() {
            (n, k)
        } else {
            (k, n)
        }
    }

    /// "nn", "nt", "tn" or "tt".
    pub fn name(self) -> &'static str {
        match self {
            Layout::NN => "nn",
            Layout::NT => "nt",
            Layout::TN => "tn",
            Layout::TT => "tt",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
