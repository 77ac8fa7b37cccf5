// Activation functions shared by every kernel family that applies one;
// src/gpu/pipelines.rs prepends this file to those families' sources, so
// each activation is written once. Kinds are
//   0 identity, 1 relu, 2 gelu (tanh form), 3 tanh, 4 sigmoid
// (the discriminants of `manytask::reference::activation::Activation`).
// The override ACT picks the kind `act` / `act_grad` apply; families that
// need a second kind (the GEMM prologue) pass their own override to the
// `_of` forms, and the switch folds away either way.

override ACT: u32 = 0u;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_C: f32 = 0.044715;

// tanh through exp overflows to NaN on some drivers for |x| > ~44;
// tanh(±10) already rounds to ±1 in f32, so clamping changes no result.
fn tanh_stable(x: f32) -> f32 {
    return tanh(clamp(x, -10.0, 10.0));
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// GELU (tanh form) = 0.5 x (1 + tanh(u)) = x · sigmoid(2u). The sigmoid
// form avoids the cancellation in 1 + tanh(u) for negative x (measured:
// 1e-3 relative error in the derivative near x = -3 with the tanh form).
fn gelu_u(x: f32) -> f32 {
    return SQRT_2_OVER_PI * (x + GELU_C * x * x * x);
}

fn act_of(kind: u32, x: f32) -> f32 {
    switch kind {
        case 0u: { return x; }
        case 1u: { return max(x, 0.0); }
        case 2u: { return x * sigmoid(2.0 * gelu_u(x)); }
        case 3u: { return tanh_stable(x); }
        default: { return sigmoid(x); }
    }
}

// d act / dx at the pre-activation x.
fn act_grad_of(kind: u32, x: f32) -> f32 {
    switch kind {
        case 0u: { return 1.0; }
        case 1u: { return select(0.0, 1.0, x > 0.0); }
        case 2u: {
            // 1 - s as sigmoid(-2u): no cancellation when s is near 1.
            let u = gelu_u(x);
            let s = sigmoid(2.0 * u);
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x);
            return s + 2.0 * x * s * sigmoid(-2.0 * u) * du;
        }
        case 3u: {
            let t = tanh_stable(x);
            return 1.0 - t * t;
        }
        default: {
            return sigmoid(x) * sigmoid(-x);
        }
    }
}

// d act / dx from the output y = act(x), for the kinds where y determines
// it (all but gelu: the host keeps Z for gelu and never selects it here).
// For relu y > 0 exactly when x > 0, so the output is the ReLU mask.
fn act_grad_from_output(kind: u32, y: f32) -> f32 {
    switch kind {
        case 1u: { return select(0.0, 1.0, y > 0.0); }
        case 3u: { return 1.0 - y * y; }
        case 4u: { return y * (1.0 - y); }
        default: { return 1.0; }
    }
}

fn act(x: f32) -> f32 {
    return act_of(ACT, x);
}

fn act_grad(x: f32) -> f32 {
    return act_grad_of(ACT, x);
}
