//! The robust scaler a checkpoint carries: `scaled = (raw - median) / mad`, then the NaN policy.
//! The gates that run the model scale with the checkpoint's own statistics, as the pipeline does.

use crate::checkpoint::Tree;
use crate::matrix::Matrix;

/// What happens to a NaN input. `zero-fill` (and its synonym `median-fill`) replaces a NaN scaled value
/// with 0, the training median; the other policies cannot be applied to one row in isolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NanPolicy {
    ZeroFill,
    Other(String),
}

impl NanPolicy {
    pub fn parse(s: &str) -> NanPolicy {
        match s {
            "zero-fill" | "median-fill" => NanPolicy::ZeroFill,
            other => NanPolicy::Other(other.to_owned()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    pub median: Vec<f64>,
    pub mad: Vec<f64>,
}

/// The numbers of a stats vector stored as a list. `None` when it is not a list of numbers (a tensor
/// node's values are not read: header only).
pub fn numbers(v: &Tree) -> Option<Vec<f64>> {
    v.as_array()?.iter().map(Tree::as_f64).collect()
}

impl Scaler {
    pub fn scale(&self, raw: &Matrix, policy: &NanPolicy) -> Matrix {
        let mut out = Vec::with_capacity(raw.data.len());
        for i in 0..raw.rows {
            for (j, &x) in raw.row(i).iter().enumerate() {
                let s = (x - self.median[j]) / self.mad[j];
                out.push(if s.is_nan() && *policy == NanPolicy::ZeroFill {
                    0.0
                } else {
                    s
                });
            }
        }
        Matrix::new(raw.rows, raw.cols, out)
    }
}
