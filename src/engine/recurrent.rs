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
/// `[batch, width]` (width: hidden × directions).
pub(super) fn run(cells: &[CellWeights], s: RecurrentStep, x: Tensor<2>, grad: bool) -> Tensor<2> {
    let [rows, _] = x.dims();
    let batch = rows / s.bars;
    let width = s.hidden * s.directions;
    let mut input = x;
    let mut last: Vec<Tensor<3>> = Vec::new();
    for k in 0..s.layers {
        let dirs: Vec<Tensor<3>> = (0..s.directions)
            .map(|d| direction(&cells[k * s.directions + d], s, input.clone(), d == 1, grad))
            .collect();
        input = Tensor::cat(dirs.clone(), 2).reshape([batch * s.bars, width]);
        last = dirs;
    }
    match s.output {
        SeqOutput::Sequence => input,
        SeqOutput::Last => step_at(input.reshape([batch, s.bars, width]), s.bars - 1),
        // Each direction's final hidden state: the forward one at the last bar, the backward one at
        // the first.
        SeqOutput::Final => {
            let finals = last
                .into_iter()
                .enumerate()
                .map(|(d, seq)| step_at(seq, if d == 1 { 0 } else { s.bars - 1 }))
                .collect();
            Tensor::cat(finals, 1)
        }
    }
}

/// Step `t` of a `[batch, bars, width]` sequence.
fn step_at(seq: Tensor<3>, t: usize) -> Tensor<2> {
    let [batch, _, width] = seq.dims();
    seq.narrow(1, t, 1).reshape([batch, width])
}

/// One direction of one layer: every step's hidden state, `[batch, bars, hidden]`, in bar order.
fn direction(
    c: &CellWeights,
    s: RecurrentStep,
    x: Tensor<2>,
    reverse: bool,
    grad: bool,
) -> Tensor<3> {
    let [rows, _] = x.dims();
    let batch = rows / s.bars;
    let gates = s.cell.gates() * s.hidden;
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
    let xw = xw.reshape([batch, s.bars, gates]);
    let mut h = step_at(xw.clone(), 0).narrow(1, 0, s.hidden).zeros_like();
    let mut cell = h.clone();
    let mut out: Vec<Option<Tensor<2>>> = vec![None; s.bars];
    let order: Vec<usize> = if reverse {
        (0..s.bars).rev().collect()
    } else {
        (0..s.bars).collect()
    };
    for t in order {
        let xt = step_at(xw.clone(), t);
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
    Tensor::stack::<3>(out.into_iter().map(|o| o.expect("every step")).collect(), 1)
}
