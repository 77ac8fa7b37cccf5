//! Buffer pool: size classes and reuse.

use manytask::gpu::pool::size_class;
use manytask::gpu::{DType, Tensor};

#[test]
fn size_classes_round_up_by_at_most_a_quarter() {
    assert_eq!(size_class(0), 256);
    assert_eq!(size_class(1), 256);
    assert_eq!(size_class(256), 256);
    assert_eq!(size_class(257), 512);
    for bytes in [
        1000u64,
        4097,
        65_537,
        1 << 20,
        (1 << 20) + 1,
        67_108_868,
        123_456_789,
    ] {
        let class = size_class(bytes);
        assert!(class >= bytes, "{bytes} -> {class}");
        assert!(
            class as f64 <= bytes as f64 * 1.25 + 256.0,
            "{bytes} -> {class}"
        );
        assert_eq!(size_class(class), class, "a class is its own class");
    }
}

#[test]
fn a_freed_buffer_is_reused_by_the_next_tensor_of_its_class() {
    // A fresh context: the shared ones see other tests' traffic.
    let ctx = crate::common::private_contexts().remove(0);
    let t = Tensor::empty(&ctx, "first", &[1000], DType::F32).unwrap();
    let before = ctx.counters();
    drop(t);
    let _again = Tensor::empty(&ctx, "second", &[990], DType::F32).unwrap();
    let delta = ctx.counters().since(&before);
    assert_eq!((delta.buffers_created, delta.buffers_reused), (0, 1));
    // A different class needs a new buffer.
    let _big = Tensor::empty(&ctx, "big", &[100_000], DType::F32).unwrap();
    assert_eq!(ctx.counters().since(&before).buffers_created, 1);
}
