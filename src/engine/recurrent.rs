//! LSTM and GRU over a window's bars, as PyTorch computes them (`torch.nn.LSTM`, `torch.nn.GRU`): the
//! gates fused in PyTorch's order (`i, f, g, o`; `r, z, n`) with both bias vectors, layer after
//! layer, each direction in its own time order, zero initial state. Plain burn tensor operations, so
//! the autodiff backend differentiates them for integrated gradients.
//!
//! The input has one bar per row (`[batch·bars, input]`, the native engine's view of a window); the
//! input projection of every step is one matrix product, then the recurrence runs step by step.

use burn::tensor::Tensor;
use burn::tensor::activation::{sigmoid, tanh};

use super::arch::{Cell, SeqOutput};
use super::native::{CellWeights, RecurrentStep, constant};

/// The layer on `x` (`[batch·bars, input]`): `[batch·bars, width]` for `sequence`, else
/// `[batch, width]` (width: hidden × directions). Inside, the layers run time-major (`[bars·batch,
/// …]`), so that each step reads and writes one contiguous block of rows.
pub(super) fn run(cells: &[CellWeights], s: RecurrentStep, x: Tensor<2>, grad: bool) -> Tensor<2> {
    let [rows, input] = x.dims();
    let batch = rows / s.bars;
    let width = s.hidden * s.directions;
    let mut seq = swap_major(x, batch, s.bars, input);
    for k in 0..s.layers {
        let dirs: Vec<Tensor<2>> = (0..s.directions)
            .map(|d| direction(&cells[k * s.directions + d], s, seq.clone(), d == 1, grad))
            .collect();
        seq = if dirs.len() == 1 {
            dirs.into_iter().next().expect("one direction")
        } else {
            Tensor::cat(dirs, 1)
        };
    }
    let at = |seq: Tensor<2>, t: usize| seq.narrow(0, t * batch, batch);
    match s.output {
        SeqOutput::Sequence => swap_major(seq, s.bars, batch, width),
        SeqOutput::Last => at(seq, s.bars - 1),
        // Each direction's final hidden state: the forward one at the last bar, the backward one at
        // the first.
        SeqOutput::Final if s.directions == 2 => Tensor::cat(
            vec![
                at(seq.clone(), s.bars - 1).narrow(1, 0, s.hidden),
                at(seq, 0).narrow(1, s.hidden, s.hidden),
            ],
            1,
        ),
        SeqOutput::Final => at(seq, s.bars - 1),
    }
}

/// `[outer·inner, width]` as `[inner·outer, width]`: batch-major rows to time-major and back.
fn swap_major(x: Tensor<2>, outer: usize, inner: usize, width: usize) -> Tensor<2> {
    x.reshape([outer, inner, width])
        .swap_dims(0, 1)
        .reshape([inner * outer, width])
}

/// One direction of one layer on a time-major input (`[bars·batch, input]`): every step's hidden
/// state, time-major, `[bars·batch, hidden]`.
fn direction(
    c: &CellWeights,
    s: RecurrentStep,
    x: Tensor<2>,
    reverse: bool,
    grad: bool,
) -> Tensor<2> {
    let [rows, _] = x.dims();
    let batch = rows / s.bars;
    let w_hh = constant(c.weight_hh.val(), grad).transpose();
    let b_hh = c
        .bias_hh
        .as_ref()
        .map(|b| constant(b.val(), grad).unsqueeze_dim::<2>(0));
    // Every step's input projection at once.
    let mut xw = x.matmul(constant(c.weight_ih.val(), grad).transpose());
    if let Some(b) = &c.bias_ih {
        xw = xw + constant(b.val(), grad).unsqueeze_dim::<2>(0);
    }
    let step = |t: usize| xw.clone().narrow(0, t * batch, batch);
    let mut h = step(0).narrow(1, 0, s.hidden).zeros_like();
    let mut cell = h.clone();
    let mut out: Vec<Option<Tensor<2>>> = vec![None; s.bars];
    let order: Vec<usize> = if reverse {
        (0..s.bars).rev().collect()
    } else {
        (0..s.bars).collect()
    };
    for t in order {
        let xt = step(t);
        let mut hh = h.clone().matmul(w_hh.clone());
        if let Some(b) = &b_hh {
            hh = hh + b.clone();
        }
        match s.cell {
            Cell::Lstm => {
                let mut g = (xt + hh).chunk(4, 1).into_iter();
                let mut next = || g.next().expect("four gates");
                let (i, f, gg, o) = (next(), next(), next(), next());
                cell = sigmoid(f) * cell + sigmoid(i) * tanh(gg);
                h = sigmoid(o) * tanh(cell.clone());
            }
            Cell::Gru => {
                let mut xs = xt.chunk(3, 1).into_iter();
                let mut hs = hh.chunk(3, 1).into_iter();
                let mut next = || (xs.next().expect("r, z, n"), hs.next().expect("r, z, n"));
                let ((xr, hr), (xz, hz), (xn, hn)) = (next(), next(), next());
                let r = sigmoid(xr + hr);
                let z = sigmoid(xz + hz);
                let n = tanh(xn + r * hn);
                // (1 − z)·n + z·h
                h = n.clone() + z * (h - n);
            }
        }
        out[t] = Some(h.clone());
    }
    Tensor::cat(out.into_iter().map(|o| o.expect("every step")).collect(), 0)
}
