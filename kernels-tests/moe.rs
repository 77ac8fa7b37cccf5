//! Mixtures of experts (MMoE, CGC / PLE, DSelect-k): the `moe` kernels
//! against their references, gradients by finite differences through
//! every new op, dispatch counts independent of E and T, a one-expert
//! MMoE against hard sharing, and each model training on both adapters.

use crate::common::check_cases;

#[test]
fn moe_kernels_match_reference() {
    check_cases("moe", |c| c.kernel.starts_with("moe::"));
}
