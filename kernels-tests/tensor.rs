//! Tensors: host round trips, f16 I/O, shape checks, device limits.

use half::f16;
use manytask::gpu::{DType, Tensor};
use manytask::Error;

use crate::common::{contexts, data};

#[test]
fn f32_round_trip_is_exact_at_awkward_sizes() {
    for ctx in contexts() {
        for n in [0usize, 1, 7, 255, 257, 65_537] {
            let values = data(n as u64, n);
            let t = Tensor::from_f32(ctx, "rt", &[n], &values).unwrap();
            assert_eq!(
                t.to_f32_vec(ctx).unwrap(),
                values,
                "n={n} on {}",
                ctx.describe()
            );
        }
    }
}

#[test]
fn f16_round_trip_is_exact_including_odd_lengths() {
    for ctx in contexts() {
        for n in [1usize, 7, 258] {
            let values: Vec<f16> = data(9, n).into_iter().map(f16::from_f32).collect();
            let t = Tensor::from_f16(ctx, "half", &[n], &values).unwrap();
            assert_eq!(t.dtype(), DType::F16);
            assert_eq!(t.size_bytes(), 2 * n as u64);
            assert_eq!(t.to_f16_vec(ctx).unwrap(), values);
            let widened: Vec<f32> = values.iter().map(|v| v.to_f32()).collect();
            assert_eq!(t.to_f32_vec(ctx).unwrap(), widened);
        }
    }
}

#[test]
fn host_data_of_the_wrong_length_is_a_shape_error() {
    let ctx = &contexts()[0];
    let err = Tensor::from_f32(ctx, "x", &[2, 3], &[1.0; 5]).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    assert!(
        err.to_string().contains("[2, 3]") && err.to_string().contains('5'),
        "{err}"
    );
}

#[test]
fn writing_f32_into_an_f16_tensor_is_a_dtype_error() {
    let ctx = &contexts()[0];
    let t = Tensor::empty(ctx, "h", &[2], DType::F16).unwrap();
    let err = t.write_f32(ctx, &[1.0, 2.0]).unwrap_err();
    assert!(matches!(err, Error::DType { .. }), "{err:?}");
}

#[test]
fn reshape_keeps_the_buffer_and_checks_the_element_count() {
    let ctx = &contexts()[0];
    let t = Tensor::from_f32(ctx, "t", &[6], &[1., 2., 3., 4., 5., 6.]).unwrap();
    let m = t.reshape(&[2, 3]).unwrap();
    assert!(m.same_storage(&t));
    assert_eq!(m.shape(), &[2, 3]);
    let err = t.reshape(&[4, 2]).unwrap_err();
    assert!(err.to_string().contains("[4, 2]"), "{err}");
}

/// One element past `max_storage_buffer_binding_size` is refused before
/// anything is allocated, with the limit named.
#[test]
fn a_tensor_over_the_storage_binding_limit_is_a_clear_error() {
    for ctx in contexts() {
        let limit = ctx
            .limits()
            .max_storage_buffer_binding_size
            .min(ctx.limits().max_buffer_size);
        let n = (limit / 4 + 1) as usize;
        let err = Tensor::empty(ctx, "huge", &[n], DType::F32).unwrap_err();
        assert!(matches!(err, Error::BufferTooLarge { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("huge") && msg.contains("max_storage_buffer_binding_size"),
            "{msg}"
        );
    }
}

#[test]
fn a_shape_whose_size_overflows_is_an_error_not_a_panic() {
    let ctx = &contexts()[0];
    let err = Tensor::empty(ctx, "overflow", &[usize::MAX, 2], DType::F32).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
}
