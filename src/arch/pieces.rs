//! How the checkpoint's PyTorch-layout tensors are cut from the graph's
//! parameters: a dense layer's W [in, out] (or a task layer's blocks, or a
//! column block of the heads' concatenated first layer) becomes one
//! `weight` [out, in] and one `bias` \[out\] per layer and task, named
//! `trunk.{i}`, `heads.{task}.{j}`, `columns.{task}.{i}`. Parameters no
//! piece covers (α, β, log σ²) are saved whole under their own names.

/// One checkpoint tensor: rows × cols elements of graph parameter `param`
/// starting at `offset` with row stride `ld`, stored transposed (a weight:
/// [cols, rows]) or as is (a bias: \[cols\]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Checkpoint tensor name, e.g. `heads.task0.1.weight`.
    pub name: String,
    /// Name of the graph parameter it is cut from, e.g. `heads.1.weight`.
    pub param: String,
    /// First element inside that parameter.
    pub offset: usize,
    /// Rows of the block in the parameter (a weight's inputs; 1 for a
    /// bias).
    pub rows: usize,
    /// Columns of the block (a weight's or bias's outputs).
    pub cols: usize,
    /// Row stride of the block in the parameter, in elements.
    pub ld: usize,
    /// Stored transposed ([cols, rows], PyTorch's [out, in]): weights.
    pub transpose: bool,
}

impl Piece {
    /// The checkpoint shape: [cols, rows] for weights, \[cols\] for biases.
    pub fn shape(&self) -> Vec<usize> {
        if self.transpose {
            vec![self.cols, self.rows]
        } else {
            vec![self.cols]
        }
    }

    /// The tensor's values cut from the parameter's values.
    pub fn cut(&self, param: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        if self.transpose {
            for c in 0..self.cols {
                for r in 0..self.rows {
                    out.push(param[self.offset + r * self.ld + c]);
                }
            }
        } else {
            for r in 0..self.rows {
                let start = self.offset + r * self.ld;
                out.extend_from_slice(&param[start..start + self.cols]);
            }
        }
        out
    }

    /// Writes the tensor's values back into the parameter's values.
    pub fn paste(&self, values: &[f32], param: &mut [f32]) {
        let mut k = 0;
        if self.transpose {
            for c in 0..self.cols {
                for r in 0..self.rows {
                    param[self.offset + r * self.ld + c] = values[k];
                    k += 1;
                }
            }
        } else {
            for r in 0..self.rows {
                let start = self.offset + r * self.ld;
                param[start..start + self.cols].copy_from_slice(&values[k..k + self.cols]);
                k += self.cols;
            }
        }
    }
}

/// The weight and bias pieces of one task's block of a layer: W block at
/// `w_offset` ([inputs, outputs] with row stride `ld`), bias at `b_offset`.
#[allow(clippy::too_many_arguments)]
pub fn layer(
    out: &mut Vec<Piece>,
    name: &str,
    param: &str,
    w_offset: usize,
    inputs: usize,
    outputs: usize,
    ld: usize,
    b_offset: usize,
) {
    out.push(Piece {
        name: format!("{name}.weight"),
        param: format!("{param}.weight"),
        offset: w_offset,
        rows: inputs,
        cols: outputs,
        ld,
        transpose: true,
    });
    out.push(Piece {
        name: format!("{name}.bias"),
        param: format!("{param}.bias"),
        offset: b_offset,
        rows: 1,
        cols: outputs,
        ld: outputs,
        transpose: false,
    });
}
