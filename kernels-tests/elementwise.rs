//! Elementwise family: every entry point against its CPU reference at every
//! size in `conformance::SIZES`, plus argument errors.

use manytask::gpu::{DType, Tensor};
use manytask::kernels::elementwise::{self, Activation};
use manytask::Error;

use crate::common::{check_kernel, contexts};

#[test]
fn fill_matches_reference_at_every_size() {
    check_kernel("elementwise::fill");
}

#[test]
fn copy_matches_reference_at_every_size() {
    check_kernel("elementwise::copy");
}

#[test]
fn add_matches_reference_at_every_size() {
    check_kernel("elementwise::add");
}

#[test]
fn scale_matches_reference_at_every_size() {
    check_kernel("elementwise::scale");
}

#[test]
fn axpy_matches_reference_at_every_size() {
    check_kernel("elementwise::axpy");
}

#[test]
fn activation_forward_matches_reference_for_every_activation() {
    for act in Activation::ALL {
        check_kernel(&format!("elementwise::act_forward[{act}]"));
    }
}

#[test]
fn activation_backward_matches_reference_for_every_activation() {
    for act in Activation::ALL {
        check_kernel(&format!("elementwise::act_backward[{act}]"));
    }
}

#[test]
fn activation_backward_from_output_matches_reference() {
    for act in Activation::ALL.into_iter().filter(|a| a.grad_from_output()) {
        check_kernel(&format!("elementwise::act_backward_from_output[{act}]"));
    }
}

/// Independent of the reference module: act' against a central finite
/// difference of the GPU's own forward kernel, in f64 on the host.
#[test]
fn activation_backward_matches_finite_differences_of_forward() {
    let z: Vec<f32> = (0..41).map(|i| -4.0 + 0.2 * i as f32 + 0.013).collect();
    let h = 1e-2f32;
    let plus: Vec<f32> = z.iter().map(|v| v + h).collect();
    let minus: Vec<f32> = z.iter().map(|v| v - h).collect();
    let ones = vec![1.0f32; z.len()];
    for ctx in contexts() {
        for act in Activation::ALL {
            let up = |data: &[f32]| -> Vec<f32> {
                let x = Tensor::from_f32(ctx, "z", &[data.len()], data).unwrap();
                let y = Tensor::empty(ctx, "y", &[data.len()], DType::F32).unwrap();
                let mut rec = ctx.recorder("fd forward");
                elementwise::act_forward(&mut rec, act, &x, &y).unwrap();
                rec.submit().unwrap();
                y.to_f32_vec(ctx).unwrap()
            };
            let (yp, ym) = (up(&plus), up(&minus));
            let zt = Tensor::from_f32(ctx, "z", &[z.len()], &z).unwrap();
            let g = Tensor::from_f32(ctx, "g", &[z.len()], &ones).unwrap();
            let dz = Tensor::empty(ctx, "dz", &[z.len()], DType::F32).unwrap();
            let mut rec = ctx.recorder("fd backward");
            elementwise::act_backward(&mut rec, act, &zt, &g, &dz).unwrap();
            rec.submit().unwrap();
            let analytic = dz.to_f32_vec(ctx).unwrap();
            for i in 0..z.len() {
                let fd = (yp[i] as f64 - ym[i] as f64) / (2.0 * h as f64);
                // Central differences err by O(h²)·f''' plus f32 rounding / h.
                let tol = 2e-3 + 1e-3 * fd.abs();
                assert!(
                    (analytic[i] as f64 - fd).abs() <= tol,
                    "{act} at z={}: analytic {} vs finite difference {fd} on {}",
                    z[i],
                    analytic[i],
                    ctx.describe()
                );
            }
        }
    }
}

#[test]
fn shape_mismatch_is_an_error_naming_the_op_and_shapes() {
    let ctx = &contexts()[0];
    let a = Tensor::zeros(ctx, "a", &[3]).unwrap();
    let b = Tensor::zeros(ctx, "b", &[4]).unwrap();
    let out = Tensor::zeros(ctx, "out", &[3]).unwrap();
    let mut rec = ctx.recorder("bad shapes");
    let err = elementwise::add(&mut rec, &a, &b, &out).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("elementwise::add") && msg.contains("[3]") && msg.contains("[4]"),
        "{msg}"
    );
    assert_eq!(rec.dispatch_count(), 0);
}

#[test]
fn f16_tensor_is_rejected_with_a_dtype_error() {
    let ctx = &contexts()[0];
    let h = Tensor::from_f16(ctx, "h", &[2], &[half::f16::ONE, half::f16::ZERO]).unwrap();
    let out = Tensor::zeros(ctx, "out", &[2]).unwrap();
    let mut rec = ctx.recorder("bad dtype");
    let err = elementwise::copy(&mut rec, &h, &out).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DType {
                got: DType::F16,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("elementwise::copy"), "{err}");
}

#[test]
fn writing_into_an_input_is_an_aliasing_error_not_a_wgpu_crash() {
    let ctx = &contexts()[0];
    let a = Tensor::from_f32(ctx, "a", &[5], &[1.0; 5]).unwrap();
    let mut rec = ctx.recorder("aliasing");
    let err = elementwise::add(&mut rec, &a, &a, &a).unwrap_err();
    assert!(matches!(err, Error::Aliasing { .. }), "{err:?}");
}

#[test]
fn the_same_tensor_may_be_read_twice() {
    for ctx in contexts() {
        let a = Tensor::from_f32(ctx, "a", &[3], &[1.0, -2.0, 0.5]).unwrap();
        let out = Tensor::empty(ctx, "out", &[3], DType::F32).unwrap();
        let mut rec = ctx.recorder("a + a");
        elementwise::add(&mut rec, &a, &a, &out).unwrap();
        rec.submit().unwrap();
        assert_eq!(out.to_f32_vec(ctx).unwrap(), vec![2.0, -4.0, 1.0]);
    }
}

#[test]
fn every_activation_parses_from_its_name_and_others_are_refused() {
    for act in std::iter::once(Activation::Identity).chain(Activation::ALL) {
        assert_eq!(act.name().parse::<Activation>(), Ok(act));
    }
    let err = "swish".parse::<Activation>().unwrap_err();
    assert!(err.contains("'swish'") && err.contains("identity"), "{err}");
}
