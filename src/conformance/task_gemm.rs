//! Conformance cases for the batched task GEMM (`kernels::task_gemm`): the
//! three passes of a block of task heads with different widths, laid out
//! as hard sharing lays them out (activations side by side in one matrix,
//! weights one after another in an arena), against `reference::task_gemm`.
//!
//!   forward  Y[:, k-block t] = act(H[:, h-block t] · W_t + b_t)   (NN)
//!   dX       dH[:, h-block t] = (G ⊙ act')[:, k-block t] · W_tᵀ   (NT)
//!   dW       dW_t = H[:, h-block t]ᵀ · (G ⊙ act')[:, k-block t]   (TN)
//!   db       db_t = colsum((G ⊙ act')[:, k-block t])  (fused in dW)

use std::sync::Arc;

use crate::conformance::{poisoned_output, Case, Expected, HostTensor, Requirement, Tolerance};
use crate::gpu::Tensor;
use crate::kernels::gemm::{Epilogue, Fusion, Layout, Operand, Prologue, Saved, Variant};
use crate::kernels::task_gemm::{block_diagonal, task_gemm, TaskTable};
use crate::reference::task_gemm::{self as reference, RefPrologue, TaskGemmProblem, TaskProblem};
use crate::types::Activation;
use crate::util::rng::Rng;

/// (input widths h_t, output widths k_t) of the task heads: one task of
/// width 1, three odd widths, and four mixing vec4-aligned and odd widths.
pub const HEADS: &[(&[usize], &[usize])] = &[
    (&[1], &[1]),
    (&[5, 17, 33], &[3, 10, 7]),
    (&[64, 40, 128, 36], &[12, 1, 257, 4]),
];

/// Batch rows.
pub const ROWS: &[usize] = &[1, 7, 65];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Forward,
    Dx,
    Dw,
    Db,
}

impl Pass {
    fn name(self) -> &'static str {
        match self {
            Pass::Forward => "forward",
            Pass::Dx => "backward_dx",
            Pass::Dw => "backward_dw",
            Pass::Db => "backward_db",
        }
    }
}

/// The head block: offsets of each task's blocks and arena entries.
#[derive(Clone, Debug)]
pub struct Heads {
    /// Batch rows.
    pub rows: usize,
    /// Each task's input width h_t.
    pub hs: Vec<usize>,
    /// Each task's output width k_t.
    pub ks: Vec<usize>,
}

impl Heads {
    /// Σ h_t: the input row length.
    pub fn sum_h(&self) -> usize {
        self.hs.iter().sum()
    }
    /// Σ k_t: the output row length.
    pub fn sum_k(&self) -> usize {
        self.ks.iter().sum()
    }
    /// Elements of the weight arena (Σ h_t·k_t).
    pub fn weights(&self) -> usize {
        self.hs.iter().zip(&self.ks).map(|(h, k)| h * k).sum()
    }

    /// The task problems of one pass (Db shares Dw's).
    pub fn problems(&self, layout: Layout) -> Vec<TaskProblem> {
        let blocks: Vec<(usize, usize)> = self
            .hs
            .iter()
            .copied()
            .zip(self.ks.iter().copied())
            .collect();
        block_diagonal(self.rows, &blocks, layout)
    }
}

#[derive(Clone, Copy, Debug)]
struct TaskCase {
    variant: Variant,
    rows: usize,
    heads: usize,
    pass: Pass,
    act: Activation,
    saved_y: bool,
}

impl TaskCase {
    fn heads(&self) -> Heads {
        let (hs, ks) = HEADS[self.heads];
        Heads {
            rows: self.rows,
            hs: hs.to_vec(),
            ks: ks.to_vec(),
        }
    }

    fn integers(&self) -> bool {
        matches!(self.act, Activation::Identity | Activation::Relu)
    }

    /// H [rows, Σh], W arena, bias [Σk], G [rows, Σk], saved [rows, Σk].
    fn host_inputs(&self) -> Vec<HostTensor> {
        let hd = self.heads();
        let mut rng =
            Rng::new((self.rows * 7919 + self.heads * 31) as u64 ^ (self.act as u64) << 48);
        let mut data = |len: usize| -> Vec<f32> {
            if self.integers() {
                (0..len)
                    .map(|_| (rng.next_u64() % 5) as f32 - 2.0)
                    .collect()
            } else {
                rng.uniform_vec(len, -1.0, 1.0)
            }
        };
        let (b, sh, sk) = (hd.rows, hd.sum_h(), hd.sum_k());
        let h = data(b * sh);
        let w = data(hd.weights());
        let bias = data(sk);
        let g = data(b * sk);
        let problems = hd.problems(Layout::NN);
        let nan = vec![f32::NAN; b * sk];
        let forward = |act| {
            reference::task_gemm(&TaskGemmProblem {
                layout: Layout::NN,
                tasks: &problems,
                a: &h,
                b: &w,
                c: &nan,
                alpha: 1.0,
                beta: None,
                bias: Some(&bias),
                act,
                prologue: None,
            })
        };
        let saved = if self.saved_y {
            forward(self.act)
        } else {
            forward(Activation::Identity)
        };
        vec![
            HostTensor::new(&[b, sh], h),
            HostTensor::new(&[hd.weights()], w),
            HostTensor::new(&[sk], bias),
            HostTensor::new(&[b, sk], g),
            HostTensor::new(&[b, sk], saved),
        ]
    }

    fn layout(&self) -> Layout {
        match self.pass {
            Pass::Forward => Layout::NN,
            Pass::Dx => Layout::NT,
            Pass::Dw | Pass::Db => Layout::TN,
        }
    }

    fn output_shape(&self) -> Vec<usize> {
        let hd = self.heads();
        match self.pass {
            Pass::Forward => vec![hd.rows, hd.sum_k()],
            Pass::Dx => vec![hd.rows, hd.sum_h()],
            Pass::Dw => vec![hd.weights()],
            Pass::Db => vec![hd.sum_k()],
        }
    }

    fn expected(&self, h: &[HostTensor]) -> Expected {
        let hd = self.heads();
        let problems = hd.problems(self.layout());
        let nan = vec![f32::NAN; self.output_shape().iter().product()];
        let prologue = RefPrologue {
            on_a: self.pass == Pass::Dx,
            saved: &h[4].data,
            act: self.act,
            from_output: self.saved_y,
        };
        let (a, b) = match self.pass {
            Pass::Forward => (&h[0].data, &h[1].data),
            Pass::Dx => (&h[3].data, &h[1].data),
            Pass::Dw | Pass::Db => (&h[0].data, &h[3].data),
        };
        let p = TaskGemmProblem {
            layout: self.layout(),
            tasks: &problems,
            a,
            b,
            c: &nan,
            alpha: 1.0,
            beta: None,
            bias: (self.pass == Pass::Forward).then_some(&h[2].data[..]),
            act: if self.pass == Pass::Forward {
                self.act
            } else {
                Activation::Identity
            },
            prologue: (self.pass != Pass::Forward).then_some(prologue),
        };
        let values = if self.pass == Pass::Db {
            reference::task_bias_grad(&p, &nan)
        } else {
            reference::task_gemm(&p)
        };
        let k_max = problems.iter().map(|t| t.k).max().unwrap_or(1) as f64;
        // Inputs lie in [-1, 1] and |act'| < 1.2, so every term is below
        // 1.2 in magnitude: a k-term fma chain errs by < (k+2)·eps·1.2·k.
        let tolerance = if self.integers() {
            Tolerance::EXACT
        } else {
            Tolerance::new(
                (k_max + 2.0) * f32::EPSILON as f64 * (1.2 * k_max + 2.0),
                4e-6,
            )
        };
        Expected { values, tolerance }
    }

    fn run(&self, rec: &mut crate::gpu::Recorder, t: &[Tensor]) -> crate::error::Result<Tensor> {
        let ctx = rec.ctx();
        let hd = self.heads();
        let table = TaskTable::new(ctx, self.layout(), &hd.problems(self.layout()))?;
        let saved = if self.saved_y {
            Saved::Output(&t[4])
        } else {
            Saved::PreActivation(&t[4])
        };
        let out = poisoned_output(ctx, "task_gemm out", &self.output_shape())?;
        let v = Some(self.variant);
        match self.pass {
            Pass::Forward => {
                let epi = Epilogue {
                    bias: Some(&t[2]),
                    act: self.act,
                    ..Epilogue::default()
                };
                task_gemm(rec, v, &table, &t[0], &t[1], &out, &epi, &Fusion::default())?;
            }
            Pass::Dx => {
                let fusion = Fusion {
                    prologue: Some(Prologue {
                        operand: Operand::A,
                        saved,
                        act: self.act,
                    }),
                    bias_grad: None,
                };
                task_gemm(
                    rec,
                    v,
                    &table,
                    &t[3],
                    &t[1],
                    &out,
                    &Epilogue::default(),
                    &fusion,
                )?;
            }
            Pass::Dw | Pass::Db => {
                let dw = poisoned_output(ctx, "task_gemm dW", &[hd.weights()])?;
                let db = poisoned_output(ctx, "task_gemm db", &[hd.sum_k()])?;
                let fusion = Fusion {
                    prologue: Some(Prologue {
                        operand: Operand::B,
                        saved,
                        act: self.act,
                    }),
                    bias_grad: Some(&db),
                };
                task_gemm(
                    rec,
                    v,
                    &table,
                    &t[0],
                    &t[3],
                    &dw,
                    &Epilogue::default(),
                    &fusion,
                )?;
                return Ok(if self.pass == Pass::Dw { dw } else { db });
            }
        }
        Ok(out)
    }

    fn into_case(self) -> Case {
        let spec = self;
        let hd = self.heads();
        Case {
            kernel: format!("task_gemm::{}[{}]", self.pass.name(), self.variant),
            case: format!(
                "rows={} h={:?} k={:?} {} from {}{}",
                self.rows,
                hd.hs,
                hd.ks,
                self.act,
                if self.saved_y { "Y" } else { "Z" },
                if self.integers() {
                    " integers"
                } else {
                    " reals"
                }
            ),
            inputs: Arc::new(move || spec.host_inputs()),
            gpu: Arc::new(move |rec, t| spec.run(rec, t)),
            reference: Arc::new(move |h| spec.expected(h)),
            requires: Requirement::for_variant(self.variant),
        }
    }
}

/// The conformance cases of `kernels::task_gemm`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for variant in crate::conformance::gemm::fusion_variants() {
        for pass in [Pass::Forward, Pass::Dx, Pass::Dw, Pass::Db] {
            for &rows in ROWS {
                for heads in 0..HEADS.len() {
                    let c = TaskCase {
                        variant,
                        rows,
                        heads,
                        pass,
                        act: Activation::Relu,
                        saved_y: true,
                    };
                    cases.push(c.into_case());
                }
            }
            let gelu = TaskCase {
                variant,
                rows: 33,
                heads: 2,
                pass,
                act: Activation::Gelu,
                saved_y: false,
            };
            cases.push(gelu.into_case());
        }
    }
    cases
}
