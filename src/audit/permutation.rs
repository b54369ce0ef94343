//! Permutation importance (Breiman, 2001; model-agnostic, so it works for a command engine): shuffle one
//! feature's column across the slice rows, run the model, and measure how far each output moves.
//! `importance = mean over repeats of mean over rows |f(x with column j shuffled) − f(x)|`, per output
//! unit, with the spread (standard deviation) over repeats. Shuffles are Fisher–Yates driven by
//! SplitMix64 from `audit.seed`, so every machine shuffles the same way. All shuffled copies go to the
//! engine in one batch (one process for a command).

use super::Unit;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::normal::Normal;

/// Importance of one feature for one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    pub mean_abs_change: f64,
    pub mean_change: f64,
    pub spread: f64,
}

/// `result[u][j]`: the importance of feature `j` for `units[u]`.
pub fn importance(
    engine: &dyn Engine,
    inputs: &Matrix,
    units: &[Unit],
    repeats: usize,
    seed: u64,
) -> Result<Vec<Vec<Importance>>> {
    let (rows, cols) = (inputs.rows, inputs.cols);
    let mut data = Vec::with_capacity(rows * cols * (1 + repeats * cols));
    data.extend_from_slice(&inputs.data);
    for rep in 0..repeats {
        for j in 0..cols {
            let order = shuffle(rows, stream_seed(seed, rep, j));
            for (r, &from) in order.iter().enumerate() {
                let mut row = inputs.row(r).to_vec();
                row[j] = inputs.row(from)[j];
                data.extend_from_slice(&row);
            }
        }
    }
    let batch = Matrix::new(rows * (1 + repeats * cols), cols, data);
    let out = engine.forward(&batch)?;
    let mut result = Vec::with_capacity(units.len());
    for u in units {
        let m = out
            .get(&u.head)
            .filter(|m| u.unit < m.cols)
            .ok_or_else(|| {
                Error::msg(format!(
                    "permutation importance: the model has no output {} of head `{}`",
                    u.unit, u.head
                ))
            })?;
        let at = |block: usize, r: usize| m.row(block * rows + r)[u.unit];
        let mut per_feature = Vec::with_capacity(cols);
        for j in 0..cols {
            let mut abs = Vec::with_capacity(repeats);
            let mut signed = 0.0;
            for rep in 0..repeats {
                let block = 1 + rep * cols + j;
                let (mut a, mut s) = (0.0, 0.0);
                for r in 0..rows {
                    let d = at(block, r) - at(0, r);
                    a += d.abs();
                    s += d;
                }
                abs.push(a / rows as f64);
                signed += s / rows as f64;
            }
            let mean = abs.iter().sum::<f64>() / repeats as f64;
            let var = abs.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / repeats as f64;
            per_feature.push(Importance {
                mean_abs_change: mean,
                mean_change: signed / repeats as f64,
                spread: var.sqrt(),
            });
        }
        result.push(per_feature);
    }
    Ok(result)
}

/// A seed per (repeat, feature), so adding a feature does not change the others' shuffles.
fn stream_seed(seed: u64, repeat: usize, feature: usize) -> u64 {
    let mut g = Normal::new(seed ^ ((repeat as u64) << 32) ^ feature as u64);
    g.next_u64()
}

/// A Fisher–Yates permutation of `0..n`.
pub fn shuffle(n: usize, seed: u64) -> Vec<usize> {
    let mut g = Normal::new(seed);
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        // Multiply-shift: an unbiased-enough index without division (n ≪ 2^32).
        let j = ((g.next_u64() >> 32) * (i as u64 + 1)) >> 32;
        v.swap(i, j as usize);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_are_permutations_and_repeatable() {
        let a = shuffle(1000, 7);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(a, shuffle(1000, 7));
        assert_ne!(a, shuffle(1000, 8));
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
    }
}
