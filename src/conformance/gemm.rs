//! Conformance cases for the GEMM family (`shaders/gemm.wgsl`).
//!
//! Integer-valued inputs in [-2, 2] make every product and partial sum
//! exact in f32, so each variant must match the reference bit for bit
//! whatever its blocking; real-valued cases check the rounding bound, and
//! epilogues with exp/tanh activations get the activation tolerance.

use std::sync::Arc;

use crate::conformance::{poisoned_output, Case, Expected, HostTensor, Requirement, Tolerance};
use crate::gpu::Tensor;
use crate::kernels::gemm::{self as kernels, Epilogue, Layout, Variant};
use crate::reference::gemm::{self as reference, GemmProblem};
use crate::types::Activation;
use crate::util::rng::Rng;

/// Shapes every generated configuration runs at: N odd (scalar B loads)
/// with K = 19 (an unrolled loop's tail of 3), and N a multiple of 4 (vec4
/// B loads) with K = 28 (vec4 A loads in NN); neither is a multiple of any
/// tile.
pub const FAMILY_SHAPES: [(usize, usize, usize); 2] = [(37, 45, 19), (33, 72, 28)];
/// (M, N, K) of the TN case of the members that read a transposed A as
/// vec4s of rows: M a multiple of 4 and of no row tile, K with a tail.
pub const TRANSPOSED_A_SHAPE: (usize, usize, usize) = (36, 72, 30);

/// The family members that run the fusion suites (dense layer, task
/// tables, this file's epilogue and batch cases) besides the named
/// variants: one per A-sharing mode that differs from theirs, both with
/// vec4 A loads along k.
pub fn fusion_variants() -> Vec<Variant> {
    let mut all = Variant::ALL.to_vec();
    for name in ["sgb:16x2k4", "rb:16x2k4"] {
        if let Ok(v) = name.parse() {
            all.push(v);
        }
    }
    all
}

/// (M, N, K): one element, a row, odd sizes, and sizes that are multiples
/// of no tile (16, 64, 8·SG) with a larger one last.
pub const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 257, 1),
    (7, 7, 7),
    (33, 33, 33),
    (65, 130, 97),
    (257, 31, 129),
    (300, 520, 260),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Data {
    /// Integers in [-2, 2]: exact products and sums.
    Integers,
    /// Uniform in [-1, 1).
    Reals,
}

/// One GEMM case: shapes, epilogue and data.
#[derive(Clone, Copy, Debug)]
struct GemmCase {
    variant: Variant,
    layout: Layout,
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    /// Per-batch A (else one A shared by every batch).
    a_batched: bool,
    beta: Option<f32>,
    /// Some(per-batch?) adds a bias.
    bias: Option<bool>,
    act: Activation,
    data: Data,
}

impl GemmCase {
    fn plain(
        variant: Variant,
        layout: Layout,
        (m, n, k): (usize, usize, usize),
        data: Data,
    ) -> Self {
        GemmCase {
            variant,
            layout,
            batch: 1,
            m,
            n,
            k,
            a_batched: false,
            beta: None,
            bias: None,
            act: Activation::Identity,
            data,
        }
    }

    fn name(&self) -> String {
        let mut s = String::new();
        if self.batch > 1 {
            s.push_str(&format!("batch={} ", self.batch));
            if !self.a_batched {
                s.push_str("shared-A ");
            }
        }
        s.push_str(&format!("{}x{}x{}", self.m, self.n, self.k));
        if let Some(beta) = self.beta {
            s.push_str(&format!(" beta={beta}"));
        }
        match self.bias {
            Some(true) => s.push_str(" bias[batch]"),
            Some(false) => s.push_str(" bias"),
            None => {}
        }
        if self.act != Activation::Identity {
            s.push_str(&format!(" {}", self.act));
        }
        s.push_str(match self.data {
            Data::Integers => " integers",
            Data::Reals => " reals",
        });
        s
    }

    fn a_shape(&self) -> Vec<usize> {
        let (r, c) = self.layout.a_stored(self.m, self.k);
        if self.a_batched && self.batch > 1 {
            vec![self.batch, r, c]
        } else {
            vec![r, c]
        }
    }

    fn b_shape(&self) -> Vec<usize> {
        let (r, c) = self.layout.b_stored(self.k, self.n);
        if self.batch > 1 {
            vec![self.batch, r, c]
        } else {
            vec![r, c]
        }
    }

    fn c_shape(&self) -> Vec<usize> {
        if self.batch > 1 {
            vec![self.batch, self.m, self.n]
        } else {
            vec![self.m, self.n]
        }
    }

    fn bias_shape(&self, batched: bool) -> Vec<usize> {
        if batched {
            vec![self.batch, self.n]
        } else {
            vec![self.n]
        }
    }

    /// A, B, then C before the call (with beta), then the bias.
    fn inputs(&self) -> Vec<HostTensor> {
        let seed = (self.m * 7919 + self.n * 31 + self.k) as u64 ^ (self.layout as u64) << 40;
        let mut rng = Rng::new(seed);
        let mut make = |shape: Vec<usize>| {
            let len = shape.iter().product();
            let data = match self.data {
                Data::Integers => (0..len)
                    .map(|_| (rng.next_u64() % 5) as f32 - 2.0)
                    .collect(),
                Data::Reals => rng.uniform_vec(len, -1.0, 1.0),
            };
            HostTensor::new(&shape, data)
        };
        let mut inputs = vec![make(self.a_shape()), make(self.b_shape())];
        if self.beta.is_some() {
            inputs.push(make(self.c_shape()));
        }
        if let Some(batched) = self.bias {
            inputs.push(make(self.bias_shape(batched)));
        }
        inputs
    }

    fn problem<'a>(&self, h: &'a [HostTensor]) -> GemmProblem<'a> {
        let mut next = 2;
        let beta = self.beta.map(|beta| {
            next += 1;
            (beta, h[next - 1].data.as_slice())
        });
        let bias = self.bias.map(|batched| (h[next].data.as_slice(), batched));
        GemmProblem {
            layout: self.layout,
            batch: self.batch,
            m: self.m,
            n: self.n,
            k: self.k,
            a: &h[0].data,
            a_batched: self.a_batched && self.batch > 1,
            b: &h[1].data,
            b_batched: self.batch > 1,
            alpha: 1.0,
            beta,
            bias,
            act: self.act,
        }
    }

    fn tolerance(&self, p: &GemmProblem) -> Tolerance {
        let exact_act = matches!(self.act, Activation::Identity | Activation::Relu);
        match (self.data, exact_act) {
            (Data::Integers, true) => Tolerance::EXACT,
            // Exact sums, then one exp/tanh-based activation.
            (Data::Integers, false) => Tolerance::new(2e-6, 4e-6),
            // A k-term fma chain errs by at most k·2^-24·Σ|a·b| (plus one
            // rounding each for beta and bias).
            (Data::Reals, _) => Tolerance::new(
                (p.k as f64 + 2.0) * f32::EPSILON as f64 / 2.0
                    * (reference::max_abs_product_sum(p) + 2.0),
                if exact_act { 0.0 } else { 4e-6 },
            ),
        }
    }

    fn into_case(self) -> Case {
        let spec = self;
        Case {
            kernel: format!("gemm::{}[{}]", self.variant, self.layout),
            case: self.name(),
            inputs: Arc::new(move || spec.inputs()),
            gpu: Arc::new(move |rec, t| {
                let c: Tensor = match spec.beta {
                    // The uploaded C is accumulated into in place.
                    Some(_) => t[2].clone(),
                    None => poisoned_output(rec.ctx(), "gemm C", &spec.c_shape())?,
                };
                let epi = Epilogue {
                    alpha: 1.0,
                    beta: spec.beta,
                    bias: spec.bias.map(|_| &t[t.len() - 1]),
                    act: spec.act,
                    ..Epilogue::default()
                };
                kernels::gemm_with(rec, spec.variant, spec.layout, &t[0], &t[1], &c, &epi)?;
                Ok(c)
            }),
            reference: Arc::new(move |h| {
                let p = spec.problem(h);
                Expected {
                    values: reference::gemm(&p),
                    tolerance: spec.tolerance(&p),
                }
            }),
            requires: Requirement::for_variant(self.variant),
        }
    }
}

/// The conformance cases of `kernels::gemm`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    // Every generated configuration, at two shapes: odd N with an unroll
    // tail in one layout (rotating over the four, so each layout meets
    // every A-sharing mode), and NN with vec4 A and B loads (integers:
    // exact whatever the blocking). Each pipeline costs the driver a
    // compile, so the fusion variants below carry the full matrix.
    let layouts = Layout::ALL;
    for (i, variant) in Variant::family().into_iter().enumerate() {
        if Variant::ALL.contains(&variant) {
            continue; // the full suite below
        }
        let rotating = layouts[i % layouts.len()];
        let [odd, aligned] = FAMILY_SHAPES;
        cases.push(GemmCase::plain(variant, rotating, odd, Data::Integers).into_case());
        cases.push(GemmCase::plain(variant, Layout::NN, aligned, Data::Integers).into_case());
        if variant.reads_at4() {
            // TN with M a multiple of 4 but not of the tile: transposed A
            // read as vec4s of rows (the `_at` entry), the last row tile clamped.
            cases.push(
                GemmCase::plain(variant, Layout::TN, TRANSPOSED_A_SHAPE, Data::Integers)
                    .into_case(),
            );
        }
    }
    for variant in fusion_variants() {
        let named = Variant::ALL.contains(&variant);
        for layout in Layout::ALL.into_iter().filter(|_| named) {
            for &shape in SHAPES {
                cases.push(GemmCase::plain(variant, layout, shape, Data::Integers).into_case());
            }
            cases.push(GemmCase::plain(variant, layout, (129, 65, 257), Data::Reals).into_case());
        }
        // Epilogues: accumulate + bias + ReLU (exact), and GELU.
        let epilogue = GemmCase {
            beta: Some(0.5),
            bias: Some(false),
            act: Activation::Relu,
            ..GemmCase::plain(variant, Layout::NN, (33, 65, 17), Data::Integers)
        };
        cases.push(epilogue.into_case());
        cases.push(
            GemmCase {
                act: Activation::Gelu,
                ..epilogue
            }
            .into_case(),
        );
        // Batched on grid z: one shared A (hard sharing's trunk output)
        // against per-batch B and bias, and fully batched with NT.
        cases.push(
            GemmCase {
                batch: 3,
                bias: Some(true),
                ..GemmCase::plain(variant, Layout::NN, (33, 65, 17), Data::Integers)
            }
            .into_case(),
        );
        cases.push(
            GemmCase {
                batch: 5,
                a_batched: true,
                ..GemmCase::plain(variant, Layout::NT, (7, 70, 9), Data::Integers)
            }
            .into_case(),
        );
    }
    cases
}
