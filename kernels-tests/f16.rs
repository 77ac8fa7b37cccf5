//! f16 storage: GEMM and dense layer cases on adapters with SHADER_F16, and
//! a clear error (never a wgpu crash) on adapters without it.

use half::f16;
use manytask::gpu::Tensor;
use manytask::kernels::gemm::{gemm, Epilogue, Layout};
use manytask::Error;

use crate::common::{check_cases, contexts};

#[test]
fn f16_gemm_matches_reference() {
    check_cases("gemm f16", |c| c.kernel.starts_with("gemm_f16::"));
}

#[test]
fn f16_dense_matches_reference() {
    check_cases("dense f16", |c| c.kernel.starts_with("dense_f16::"));
}

#[test]
fn f16_without_shader_f16_is_a_clear_error() {
    let mut checked = 0;
    for ctx in contexts().iter().filter(|c| !c.granted().shader_f16) {
        let a = Tensor::from_f16(ctx, "a", &[2, 2], &[f16::ONE; 4]).unwrap();
        let c = Tensor::from_f16(ctx, "c", &[2, 2], &[f16::ZERO; 4]).unwrap();
        let mut rec = ctx.recorder("f16");
        let e = gemm(&mut rec, Layout::NN, &a, &a, &c, &Epilogue::default()).unwrap_err();
        assert!(matches!(e, Error::MissingFeature { .. }), "{e}");
        assert!(
            e.to_string().contains("SHADER_F16") && e.to_string().contains("f32"),
            "{e}"
        );
        assert_eq!(rec.dispatch_count(), 0);
        checked += 1;
    }
    // Mixing f16 and f32 operands is an error everywhere.
    let ctx = &contexts()[0];
    let a = Tensor::from_f16(ctx, "a", &[2, 2], &[f16::ONE; 4]).unwrap();
    let b = Tensor::zeros(ctx, "b", &[2, 2]).unwrap();
    let mut rec = ctx.recorder("mixed");
    let e = gemm(&mut rec, Layout::NN, &a, &b, &b, &Epilogue::default()).unwrap_err();
    assert!(matches!(e, Error::DType { .. }), "{e}");
    if std::env::var(crate::common::REQUIRE_ENV).is_ok_and(|v| v.contains("gl")) {
        assert!(checked > 0, "the GL adapter should lack SHADER_F16 here");
    }
}
