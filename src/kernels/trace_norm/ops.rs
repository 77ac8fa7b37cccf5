//! One launcher per entry point of `shaders/trace_norm.wgsl`. Callers
//! (the route plans) pass well-formed tensors: the public entry points of
//! `trace_norm` check shapes before anything is recorded.

use crate::error::Result;
use crate::gpu::{Bind, KernelSpec, Recorder, Shader, Tensor};

pub const NS_NORMALISE: KernelSpec = KernelSpec::new(Shader::TraceNorm, "ns_normalise");
pub const ADD_DIAGONAL: KernelSpec = KernelSpec::new(Shader::TraceNorm, "add_diagonal");
pub const PRODUCT: KernelSpec = KernelSpec::new(Shader::TraceNorm, "product");
pub const SWAP_LEADING_AXES: KernelSpec = KernelSpec::new(Shader::TraceNorm, "swap_leading_axes");
pub const GRAM_PARTIALS: KernelSpec = KernelSpec::new(Shader::TraceNorm, "gram_partials");

pub fn factor_spec(prox: bool) -> KernelSpec {
    KernelSpec::new(Shader::TraceNorm, "trace_norm_factor").with("MODE", prox as u32)
}

/// Mirrors `Params` in the shader (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    n: u32,
    sweeps: u32,
    tau: f32,
    rel_tol: f32,
    d0: u32,
    d1: u32,
    d2: u32,
    accumulate: u32,
    alpha: f32,
    beta: f32,
    _pad: [u32; 2],
}

const WG: u32 = 256;

/// Jacobi on `gram` (n×n, rotated in place) → `m` (n×n) and `norm` [1].
pub fn factor(
    rec: &mut Recorder,
    op: &'static str,
    gram: &Tensor,
    m: &Tensor,
    tau: Option<f32>,
    norm: &Tensor,
) -> Result<()> {
    let params = Params {
        n: gram.shape()[0] as u32,
        sweeps: super::SWEEPS,
        tau: tau.unwrap_or(0.0),
        rel_tol: super::REL_TOL,
        ..Params::default()
    };
    let binds = [
        Bind::write(1, gram),
        Bind::write(2, m),
        Bind::write(3, norm),
    ];
    rec.dispatch(op, &factor_spec(tau.is_some()), &params, &binds, [1, 1, 1])
}

/// dst = x / sqrt(sq[0]) (zero when sq[0] = 0).
pub fn normalise(
    rec: &mut Recorder,
    op: &'static str,
    x: &Tensor,
    sq: &Tensor,
    dst: &Tensor,
) -> Result<()> {
    let n = x.len();
    let params = Params {
        n: n as u32,
        ..Params::default()
    };
    let binds = [Bind::read(4, x), Bind::read(5, sq), Bind::write(6, dst)];
    rec.dispatch_1d(op, &NS_NORMALISE, &params, &binds, n as u64, WG)
}

/// a (square) ← alpha·a + beta·I, in place.
pub fn add_diagonal(
    rec: &mut Recorder,
    op: &'static str,
    a: &Tensor,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    let side = a.shape()[0];
    let params = Params {
        n: (side * side) as u32,
        d0: side as u32,
        alpha,
        beta,
        ..Params::default()
    };
    rec.dispatch_1d(
        op,
        &ADD_DIAGONAL,
        &params,
        &[Bind::write(6, a)],
        (side * side) as u64,
        WG,
    )
}

/// dst = a ∘ b.
pub fn product(
    rec: &mut Recorder,
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    dst: &Tensor,
) -> Result<()> {
    let n = a.len();
    let params = Params {
        n: n as u32,
        ..Params::default()
    };
    let binds = [Bind::read(4, a), Bind::read(5, b), Bind::write(6, dst)];
    rec.dispatch_1d(op, &PRODUCT, &params, &binds, n as u64, WG)
}

/// dst [d1, d0, d2] (+)= alpha · src [d0, d1, d2] with the leading axes swapped.
#[allow(clippy::too_many_arguments)]
pub fn swap_leading_axes(
    rec: &mut Recorder,
    op: &'static str,
    src: &Tensor,
    [d0, d1, d2]: [usize; 3],
    alpha: f32,
    accumulate: bool,
    dst: &Tensor,
) -> Result<()> {
    let n = d0 * d1 * d2;
    let params = Params {
        n: n as u32,
        d0: d0 as u32,
        d1: d1 as u32,
        d2: d2 as u32,
        accumulate: accumulate as u32,
        alpha,
        ..Params::default()
    };
    let binds = [Bind::read(4, src), Bind::write(6, dst)];
    rec.dispatch_1d(op, &SWAP_LEADING_AXES, &params, &binds, n as u64, WG)
}

/// Columns of X one `gram_partials` workgroup sums: few enough chunks that
/// `reduce::column_sums` takes them in one pass up to 1M columns (256
/// rows), enough workgroups (chunks × block pairs) to fill the adapter
/// (16384 measured no better on lavapipe, within its noise).
pub const GRAM_CHUNK: usize = 4096;

/// partials [chunks, s, s] of X [s, c] (s ≤ 64): chunk b's Σ x_ik·x_jk,
/// both triangles; one workgroup per chunk and 4×4 block of pairs. X is
/// bound twice, as f32 and as vec4 (the vec4 reads when c % 4 = 0).
pub fn gram_partials(
    rec: &mut Recorder,
    op: &'static str,
    x: &Tensor,
    partials: &Tensor,
) -> Result<()> {
    let (s, c) = (x.shape()[0], x.shape()[1]);
    let chunks = c.div_ceil(GRAM_CHUNK);
    let params = Params {
        d0: s as u32,
        d1: c as u32,
        d2: GRAM_CHUNK as u32,
        ..Params::default()
    };
    let blocks = s.div_ceil(4);
    let tiles = blocks * (blocks + 1) / 2;
    let binds = [Bind::read(4, x), Bind::read(7, x), Bind::write(6, partials)];
    rec.dispatch(
        op,
        &GRAM_PARTIALS,
        &params,
        &binds,
        [chunks as u32, tiles as u32, 1],
    )
}
