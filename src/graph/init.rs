//! The weight-initialisation schemes of dense layers (`WeightInit`) as
//! parameter inits: PyTorch's `nn.Linear` default (W and b uniform in
//! ±1/√fan_in), Glorot (W uniform in ±√(6/(fan_in + fan_out)), b = 0) and
//! Kaiming / He for ReLU (W uniform in ±√(6/fan_in), b = 0). A task layer
//! draws each task's block with that task's fans, as separate layers
//! would (Glorot keeps the widest block's bound for the whole weight: the
//! engine's init before the schemes, kept bit-identical).

use crate::graph::ops::TaskBlock;
use crate::graph::params::Init;
use crate::types::WeightInit;

/// The bound of a dense weight [fan_in, fan_out] under `scheme`.
pub fn weight_bound(scheme: WeightInit, fan_in: usize, fan_out: usize) -> f32 {
    match scheme {
        WeightInit::PyTorch => 1.0 / (fan_in.max(1) as f32).sqrt(),
        WeightInit::Glorot => (6.0 / (fan_in + fan_out).max(1) as f32).sqrt(),
        WeightInit::Kaiming => (6.0 / fan_in.max(1) as f32).sqrt(),
    }
}

/// The bound of a dense bias under `scheme` (0: zeros).
pub fn bias_bound(scheme: WeightInit, fan_in: usize) -> f32 {
    match scheme {
        WeightInit::PyTorch => 1.0 / (fan_in.max(1) as f32).sqrt(),
        WeightInit::Glorot | WeightInit::Kaiming => 0.0,
    }
}

/// A dense layer's (weight, bias) inits.
pub(crate) fn dense(scheme: WeightInit, fan_in: usize, fan_out: usize) -> (Init, Init) {
    let w = match scheme {
        // The variant the engine always used: bit-identical values.
        WeightInit::Glorot => Init::Glorot { fan_in, fan_out },
        _ => Init::Uniform(weight_bound(scheme, fan_in, fan_out)),
    };
    (w, bias(scheme, fan_in))
}

fn bias(scheme: WeightInit, fan_in: usize) -> Init {
    match scheme {
        WeightInit::PyTorch => Init::Uniform(bias_bound(scheme, fan_in)),
        WeightInit::Glorot | WeightInit::Kaiming => Init::Zeros,
    }
}

/// A task layer's (weight, bias) inits: every task's [in_t, out_t] block
/// (weights one after another) and \[out_t\] bias with its own fans.
pub(crate) fn task_dense(scheme: WeightInit, blocks: &[TaskBlock]) -> (Init, Init) {
    if scheme == WeightInit::Glorot {
        // Glorot bound of the widest block for the whole arena entry.
        let fan = blocks
            .iter()
            .map(|b| b.inputs + b.outputs)
            .max()
            .unwrap_or(1);
        return (Init::Uniform((6.0 / fan as f32).sqrt()), Init::Zeros);
    }
    let w = blocks
        .iter()
        .map(|b| {
            (
                b.inputs * b.outputs,
                weight_bound(scheme, b.inputs, b.outputs),
            )
        })
        .collect();
    let b = match scheme {
        WeightInit::PyTorch => Init::UniformBlocks(
            blocks
                .iter()
                .map(|b| (b.outputs, bias_bound(scheme, b.inputs)))
                .collect(),
        ),
        _ => Init::Zeros,
    };
    (Init::UniformBlocks(w), b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::DType;
    use crate::graph::builder::Graph;
    use crate::types::Activation;

    /// Mean of x² (the variance of a zero-mean uniform) and max |x|.
    fn moments(v: &[f32]) -> (f64, f32) {
        let var = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len() as f64;
        (var, v.iter().fold(0f32, |m, x| m.max(x.abs())))
    }

    /// Checks values against U(±bound): none past it, the largest near
    /// it, and the empirical variance within 5% of bound²/3 (for n draws
    /// its standard error is ≈ 0.9·n^-½: 0.5% for the 3·10⁴ of `layer`,
    /// whose fans make every other formula, or fan_out for fan_in, off by
    /// ≥ 50%).
    fn assert_uniform(v: &[f32], bound: f64, what: &str) {
        let (var, top) = moments(v);
        let want = bound * bound / 3.0;
        assert!(
            top as f64 <= bound * (1.0 + 1e-6),
            "{what}: {top} > {bound}"
        );
        assert!(
            top as f64 > 0.98 * bound,
            "{what}: max {top} far below {bound}"
        );
        assert!(
            (var / want - 1.0).abs() < 0.05,
            "{what}: variance {var} vs bound²/3 = {want}"
        );
    }

    fn values(g: &Graph, name: &str) -> Vec<f32> {
        let all = g.params().initial_values(7);
        let e = g
            .params()
            .entries()
            .iter()
            .find(|e| e.name == name)
            .unwrap();
        all[e.offset..e.offset + e.len()].to_vec()
    }

    /// One dense layer 100 → 300: the schemes' variances 1/100 (PyTorch),
    /// 6/400 (Glorot), 6/100 (Kaiming), and with fan_out taken for fan_in
    /// 1/300, 6/300.
    fn layer(scheme: Option<WeightInit>) -> Graph {
        let mut g = Graph::with_param_alignment(1);
        if let Some(s) = scheme {
            g.set_weight_init(s);
        }
        let x = g.input("x", &[3, 100], DType::F32);
        g.dense("d", x, 300, Activation::Relu).unwrap();
        g
    }

    #[test]
    fn each_scheme_draws_the_uniform_of_its_formula() {
        let (fan_in, fan_out) = (100.0f64, 300.0f64);
        let cases = [
            (WeightInit::PyTorch, 1.0 / fan_in.sqrt(), true),
            (WeightInit::Glorot, (6.0 / (fan_in + fan_out)).sqrt(), false),
            (WeightInit::Kaiming, (6.0 / fan_in).sqrt(), false),
        ];
        for (scheme, bound, bias_drawn) in cases {
            let g = layer(Some(scheme));
            assert_uniform(&values(&g, "d.weight"), bound, &format!("{scheme} weight"));
            let b = values(&g, "d.bias");
            if bias_drawn {
                // 300 draws: the bound, and the largest near it.
                let top = b.iter().fold(0f32, |m, x| m.max(x.abs()));
                assert!(
                    top as f64 <= bound && top as f64 > 0.9 * bound,
                    "{scheme} bias"
                );
            } else {
                assert!(b.iter().all(|&x| x == 0.0), "{scheme} bias {b:?}");
            }
        }
    }

    #[test]
    fn glorot_is_the_graph_default_and_the_engine_s_former_init() {
        let default = layer(None);
        let glorot = layer(Some(WeightInit::Glorot));
        assert_eq!(default.weight_init(), WeightInit::Glorot);
        assert_eq!(
            default.params().initial_values(3),
            glorot.params().initial_values(3)
        );
        assert_eq!(
            glorot.params().entries()[0].init,
            Init::Glorot {
                fan_in: 100,
                fan_out: 300
            }
        );
        assert_eq!(glorot.params().entries()[1].init, Init::Zeros);
    }

    #[test]
    fn task_layers_draw_each_block_with_its_own_fans() {
        // Two tasks with different fan_in: 300 → 20 and 30 → 20 (the
        // second block is small: its bound is checked, not its variance).
        let blocks = [
            TaskBlock {
                inputs: 300,
                outputs: 20,
            },
            TaskBlock {
                inputs: 30,
                outputs: 20,
            },
        ];
        for scheme in [WeightInit::PyTorch, WeightInit::Kaiming] {
            let mut g = Graph::with_param_alignment(1);
            g.set_weight_init(scheme);
            let x = g.input("x", &[3, 330], DType::F32);
            g.task_dense("t", x, &blocks, Activation::Relu).unwrap();
            let w = values(&g, "t.weight");
            let (first, second) = w.split_at(300 * 20);
            let bound = |fan_in: f64| match scheme {
                WeightInit::PyTorch => 1.0 / fan_in.sqrt(),
                _ => (6.0 / fan_in).sqrt(),
            };
            assert_uniform(first, bound(300.0), &format!("{scheme} block 0"));
            let (_, top) = moments(second);
            assert!(top as f64 <= bound(30.0) && top as f64 > 0.9 * bound(30.0));
            assert!(
                top as f64 > bound(300.0),
                "block 1 drawn with block 0's bound"
            );
            let b = values(&g, "t.bias");
            match scheme {
                WeightInit::PyTorch => {
                    let (b0, b1) = b.split_at(20);
                    let (_, t0) = moments(b0);
                    let (_, t1) = moments(b1);
                    assert!(t0 as f64 <= bound(300.0) && t1 as f64 <= bound(30.0));
                    assert!(
                        t1 as f64 > bound(300.0),
                        "bias 1 drawn with block 0's bound"
                    );
                }
                _ => assert!(b.iter().all(|&x| x == 0.0)),
            }
        }
    }
}
