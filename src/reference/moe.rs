//! Reference for the mixture-of-experts kernels (`kernels::moe`), in f64:
//! the gated combination and its backward, the per-block gate softmax,
//! and the DSelect-k gate (Hazimeh et al. 2021) with its entropy
//! regulariser. Layouts as in `shaders/moe.wgsl`. GPU-free: the mixture
//! is described by plain counts (`Layout`), not the kernels' type.

/// The counts of a mixture (see `kernels::moe::Mixture`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// T.
    pub tasks: usize,
    /// Es.
    pub task_experts: usize,
    /// Ss.
    pub shared_experts: usize,
    /// PLE's shared output over every expert.
    pub shared_output: bool,
    /// W.
    pub width: usize,
}

impl Layout {
    /// E.
    pub fn experts(&self) -> usize {
        self.tasks * self.task_experts + self.shared_experts
    }

    /// Outputs: T (+ 1).
    pub fn outputs(&self) -> usize {
        self.tasks + usize::from(self.shared_output)
    }

    /// Es + Ss.
    pub fn block(&self) -> usize {
        self.task_experts + self.shared_experts
    }

    /// G.
    pub fn gate_columns(&self) -> usize {
        self.tasks * self.block() + usize::from(self.shared_output) * self.experts()
    }

    /// Output o's gate columns as (column, expert) pairs.
    pub fn gate_pairs(&self, o: usize) -> Vec<(usize, usize)> {
        let b = self.block();
        if o == self.tasks {
            return (0..self.experts()).map(|e| (o * b + e, e)).collect();
        }
        let own = (0..self.task_experts).map(|j| (o * b + j, o * self.task_experts + j));
        let shared = (0..self.shared_experts).map(|j| {
            (
                o * b + self.task_experts + j,
                self.tasks * self.task_experts + j,
            )
        });
        own.chain(shared).collect()
    }
}

/// h [rows, O·W] from F [rows, E·W] and g [rows, G].
pub fn mix(f: &[f32], g: &[f32], rows: usize, l: &Layout) -> Vec<f32> {
    let (w, e_all, gc, o_all) = (l.width, l.experts(), l.gate_columns(), l.outputs());
    let mut h = vec![0f32; rows * o_all * w];
    for r in 0..rows {
        for o in 0..o_all {
            let pairs = l.gate_pairs(o);
            for col in 0..w {
                let v: f64 = pairs
                    .iter()
                    .map(|&(c, e)| g[r * gc + c] as f64 * f[r * e_all * w + e * w + col] as f64)
                    .sum();
                h[r * o_all * w + o * w + col] = v as f32;
            }
        }
    }
    h
}

/// (dF, dg) of the mixture from dh.
pub fn mix_backward(
    f: &[f32],
    g: &[f32],
    dh: &[f32],
    rows: usize,
    l: &Layout,
) -> (Vec<f32>, Vec<f32>) {
    let (w, e_all, gc, o_all) = (l.width, l.experts(), l.gate_columns(), l.outputs());
    let mut df = vec![0f64; rows * e_all * w];
    let mut dg = vec![0f64; rows * gc];
    for r in 0..rows {
        for o in 0..o_all {
            for (c, e) in l.gate_pairs(o) {
                for col in 0..w {
                    let up = dh[r * o_all * w + o * w + col] as f64;
                    df[r * e_all * w + e * w + col] += g[r * gc + c] as f64 * up;
                    dg[r * gc + c] += up * f[r * e_all * w + e * w + col] as f64;
                }
            }
        }
    }
    let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
    (f32s(df), f32s(dg))
}

/// Softmax of each output's gate block, per row.
pub fn gate_softmax(z: &[f32], rows: usize, l: &Layout) -> Vec<f32> {
    let gc = l.gate_columns();
    let mut out = vec![0f32; z.len()];
    for r in 0..rows {
        for o in 0..l.outputs() {
            let cols: Vec<usize> = l.gate_pairs(o).into_iter().map(|(c, _)| c).collect();
            let top = cols
                .iter()
                .map(|&c| z[r * gc + c] as f64)
                .fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = cols
                .iter()
                .map(|&c| (z[r * gc + c] as f64 - top).exp())
                .sum();
            for &c in &cols {
                out[r * gc + c] = ((z[r * gc + c] as f64 - top).exp() / sum) as f32;
            }
        }
    }
    out
}

/// dz = g ⊙ (dg − ⟨g, dg⟩) per block, from the softmax output g.
pub fn gate_softmax_backward(g: &[f32], dg: &[f32], rows: usize, l: &Layout) -> Vec<f32> {
    let gc = l.gate_columns();
    let mut dz = vec![0f32; g.len()];
    for r in 0..rows {
        for o in 0..l.outputs() {
            let cols: Vec<usize> = l.gate_pairs(o).into_iter().map(|(c, _)| c).collect();
            let dot: f64 = cols
                .iter()
                .map(|&c| g[r * gc + c] as f64 * dg[r * gc + c] as f64)
                .sum();
            for &c in &cols {
                dz[r * gc + c] = (g[r * gc + c] as f64 * (dg[r * gc + c] as f64 - dot)) as f32;
            }
        }
    }
    dz
}

/// A DSelect-k gate's counts (see `kernels::moe::DSelect`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DSelectLayout {
    /// T.
    pub tasks: usize,
    /// E.
    pub experts: usize,
    /// k.
    pub selectors: usize,
    /// γ.
    pub gamma: f64,
    /// λ of the entropy regulariser (mean over rows).
    pub entropy: f64,
}

/// Keeps log finite where a selector weight is exactly 0 (as the shader).
const ENTROPY_EPS: f64 = 1e-6;

impl DSelectLayout {
    /// m = ⌈log2 E⌉.
    pub fn bits(&self) -> usize {
        self.experts.next_power_of_two().trailing_zeros() as usize
    }

    fn task_logits(&self) -> usize {
        self.selectors * (self.bits() + 1)
    }

    /// (softmax weights, every selector's r over all 2^m codes) of one
    /// (row, task) block of logits.
    fn selectors_of(&self, z: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
        let (k, m) = (self.selectors, self.bits());
        let alpha = &z[k * m..k * m + k];
        let top = alpha.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = alpha.iter().map(|a| (a - top).exp()).collect();
        let sum: f64 = e.iter().sum();
        let w = e.iter().map(|x| x / sum).collect();
        let r = (0..k)
            .map(|i| {
                let s: Vec<f64> = (0..m)
                    .map(|j| smooth_step(z[i * m + j], self.gamma))
                    .collect();
                (0..1usize << m)
                    .map(|code| {
                        (0..m)
                            .map(|j| if code >> j & 1 == 1 { s[j] } else { 1.0 - s[j] })
                            .product()
                    })
                    .collect()
            })
            .collect();
        (w, r)
    }

    /// The gates [rows, T·E] from the logits [rows, T·k·(m + 1)].
    pub fn gates(&self, logits: &[f32], rows: usize) -> Vec<f32> {
        let n = self.task_logits();
        let mut out = vec![0f32; rows * self.tasks * self.experts];
        for rt in 0..rows * self.tasks {
            let z: Vec<f64> = logits[rt * n..(rt + 1) * n]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let (w, r) = self.selectors_of(&z);
            for e in 0..self.experts {
                let q: f64 = (0..self.selectors).map(|i| w[i] * r[i][e]).sum();
                out[rt * self.experts + e] = q as f32;
            }
        }
        out
    }

    /// The regulariser's value: λ · mean over rows of Σ_t Σ_i H(r_i).
    pub fn entropy_value(&self, logits: &[f32], rows: usize) -> f64 {
        let n = self.task_logits();
        let mut total = 0.0;
        for rt in 0..rows * self.tasks {
            let z: Vec<f64> = logits[rt * n..(rt + 1) * n]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let (_, r) = self.selectors_of(&z);
            for ri in &r {
                total -= ri.iter().map(|p| p * (p + ENTROPY_EPS).ln()).sum::<f64>();
            }
        }
        self.entropy * total / rows.max(1) as f64
    }

    /// d(logits) of ⟨dq, gates⟩ + the entropy regulariser, by central
    /// differences in f64 (the reference is the definition, not a second
    /// copy of the shader's chain rule).
    pub fn backward(&self, logits: &[f32], dq: &[f32], rows: usize) -> Vec<f32> {
        let n = self.task_logits();
        let objective = |z: &[f64], rt: usize| -> f64 {
            let (w, r) = self.selectors_of(z);
            let mut v = 0.0;
            for e in 0..self.experts {
                let q: f64 = (0..self.selectors).map(|i| w[i] * r[i][e]).sum();
                v += q * dq[rt * self.experts + e] as f64;
            }
            let h: f64 = r
                .iter()
                .map(|ri| -ri.iter().map(|p| p * (p + ENTROPY_EPS).ln()).sum::<f64>())
                .sum();
            v + self.entropy * h / rows.max(1) as f64
        };
        let mut out = vec![0f32; logits.len()];
        const H: f64 = 1e-6;
        for rt in 0..rows * self.tasks {
            let z: Vec<f64> = logits[rt * n..(rt + 1) * n]
                .iter()
                .map(|&v| v as f64)
                .collect();
            for j in 0..n {
                let (mut up, mut down) = (z.clone(), z.clone());
                up[j] += H;
                down[j] -= H;
                out[rt * n + j] = ((objective(&up, rt) - objective(&down, rt)) / (2.0 * H)) as f32;
            }
        }
        out
    }
}

/// The smooth step S(z): 0 below −γ/2, 1 above γ/2, the cubic
/// −2z³/γ³ + 3z/(2γ) + ½ between.
pub fn smooth_step(z: f64, gamma: f64) -> f64 {
    if z <= -gamma / 2.0 {
        0.0
    } else if z >= gamma / 2.0 {
        1.0
    } else {
        -2.0 / gamma.powi(3) * z.powi(3) + 1.5 / gamma * z + 0.5
    }
}
