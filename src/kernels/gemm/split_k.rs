//! Split-K for adapters that cap an invocation's loop iterations
//! (llvmpipe stops an invocation after 65535).

use crate::error::Result;
use crate::gpu::{GpuContext, Recorder, Tensor};
use crate::kernels::autotune;
use crate::kernels::gemm::launch::{batch_stride, record_with, Strides};
use crate::kernels::gemm::{
    Epilogue, Fusion, GemmShape, Layout, Operand, Prologue, Saved, Variant,
};
use crate::types::Activation;

/// K per split-K chunk on an adapter with a loop cap, when `k` needs
/// more than one: the largest power of two every variant runs within the
/// cap (llvmpipe: 32768; the tiled variant loops 9 times per 8 k), or
/// None where one launch is fine.
pub fn split_k_chunk(ctx: &GpuContext, k: usize) -> Option<usize> {
    let limit = ctx.loop_limit()?;
    if Variant::ALL
        .iter()
        .all(|v| v.loop_iterations(k as u64) <= limit)
    {
        return None;
    }
    let mut chunk = 1usize << 30;
    while chunk > 64
        && Variant::ALL
            .iter()
            .any(|v| v.loop_iterations(chunk as u64) > limit)
    {
        chunk /= 2;
    }
    Some(chunk)
}

/// Split-K for adapters that cap an invocation's loop iterations
/// (llvmpipe): K is cut into chunks of `chunk` (a multiple of 64, so every
/// chunk starts on an aligned element of A and B) and the chunks run in
/// order, each adding into C (epilogue beta = 1; the first applies the
/// caller's beta; the last the bias, activation and Z). Deterministic: a
/// fixed chunking and order. The bias-gradient fusion accumulates the
/// same way; the prologue's saved tensor is cut like its operand.
#[allow(clippy::too_many_arguments)]
pub(super) fn split_k(
    rec: &mut Recorder,
    variant: Option<Variant>,
    layout: Layout,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    epi: &Epilogue,
    fusion: &Fusion,
    shape: GemmShape,
    chunk: usize,
) -> Result<()> {
    let ctx = rec.ctx();
    // Element offset of k0 in a stored operand, and its row stride.
    let a_at = |k0: usize| if layout.trans_a() { k0 * shape.m } else { k0 };
    let b_at = |k0: usize| if layout.trans_b() { k0 } else { k0 * shape.n };
    let tail = |t: &Tensor, at: usize| t.view(ctx, at, &[t.len() - at]);
    let chunks = shape.k.div_ceil(chunk);
    for i in 0..chunks {
        let k0 = i * chunk;
        let kc = chunk.min(shape.k - k0);
        let (first, last) = (i == 0, i + 1 == chunks);
        let (av, bv) = (tail(a, a_at(k0))?, tail(b, b_at(k0))?);
        let saved_view = match &fusion.prologue {
            Some(p) => {
                let at = if p.operand == Operand::A {
                    a_at(k0)
                } else {
                    b_at(k0)
                };
                Some(tail(p.saved.tensor(), at)?)
            }
            None => None,
        };
        let prologue = fusion.prologue.map(|p| Prologue {
            saved: match (p.saved, &saved_view) {
                (Saved::PreActivation(_), Some(v)) => Saved::PreActivation(v),
                (Saved::Output(_), Some(v)) => Saved::Output(v),
                (s, None) => s,
            },
            ..p
        });
        let part = Epilogue {
            alpha: epi.alpha,
            beta: if first { epi.beta } else { Some(1.0) },
            bias: if last { epi.bias } else { None },
            act: if last { epi.act } else { Activation::Identity },
            z_out: if last { epi.z_out } else { None },
        };
        let part_fusion = Fusion {
            prologue,
            bias_grad: fusion.bias_grad,
        };
        let part_shape = GemmShape { k: kc, ..shape };
        let v = match variant {
            Some(v) => v,
            None => autotune::gemm_variant(ctx, layout, part_shape)?,
        };
        // The views keep the full operands' leading dimensions.
        let lda = if layout.trans_a() { shape.m } else { shape.k };
        let ldb = if layout.trans_b() { shape.k } else { shape.n };
        record_chunk(
            rec,
            v,
            layout,
            (&av, lda),
            (&bv, ldb),
            c,
            &part,
            &part_fusion,
            part_shape,
            (a, b),
        )?;
    }
    Ok(())
}

/// One split-K chunk: `record_checked` with the leading dimensions and
/// batch strides of the full operands (`full`), which the views lack.
#[allow(clippy::too_many_arguments)]
fn record_chunk(
    rec: &mut Recorder,
    variant: Variant,
    layout: Layout,
    (a, lda): (&Tensor, usize),
    (b, ldb): (&Tensor, usize),
    c: &Tensor,
    epi: &Epilogue,
    fusion: &Fusion,
    shape: GemmShape,
    full: (&Tensor, &Tensor),
) -> Result<()> {
    let strides = Strides {
        lda: lda as u32,
        ldb: ldb as u32,
        stride_a: batch_stride(full.0, shape.batch),
        stride_b: batch_stride(full.1, shape.batch),
    };
    record_with(rec, variant, layout, a, b, c, epi, fusion, shape, strides)
}
