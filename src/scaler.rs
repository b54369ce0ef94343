//! The scaler a checkpoint carries, by kind, and the NaN policy. Every kind scales an input the same way:
//! `scaled = clip((raw − centre) / (spread × factor + epsilon))`, where the kind says which statistics
//! the checkpoint stores and what the centre and spread are (docs/checkpoint-metadata.md#scalers):
//!
//! | kind | statistics | centre | spread |
//! |---|---|---|---|
//! | `robust` | `median`, `mad` | median | MAD (unscaled; a 1.4826 normal-consistency factor is `factor`) |
//! | `standard` | `mean`, `std` | mean | standard deviation (ddof 0, as scikit-learn) |
//! | `min-max` | `min`, `max` | min | max − min |
//! | `identity` | none | 0 | 1 (factor and epsilon do not apply) |
//!
//! The gates that run the model scale with the checkpoint's own statistics, as the pipeline does.

use crate::checkpoint::Tree;
use crate::matrix::Matrix;

/// What happens to a NaN input. `zero-fill` (and its synonym `median-fill`) replaces a NaN scaled value
/// with 0, the training centre; the other policies cannot be applied to one row in isolation.
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

/// A scaler kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Robust,
    Standard,
    MinMax,
    Identity,
}

impl Kind {
    /// The kind a stated name means: its canonical name or a common spelling (`median-mad`, `zscore`,
    /// `minmax`, `none`); `None` for a name plumbline does not know.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(
            match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
                "robust" | "robust-zscore" | "robust-z" | "robust-scaler" | "robustscaler"
                | "median-mad" | "mad" => Kind::Robust,
                "standard" | "zscore" | "z-score" | "standard-scaler" | "standardscaler"
                | "mean-std" => Kind::Standard,
                "min-max" | "minmax" | "min-max-scaler" | "minmaxscaler" => Kind::MinMax,
                "identity" | "none" => Kind::Identity,
                _ => return None,
            },
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Robust => "robust",
            Kind::Standard => "standard",
            Kind::MinMax => "min-max",
            Kind::Identity => "identity",
        }
    }

    /// The names of the statistics the checkpoint stores for this kind: (centre, spread source).
    pub fn stats(self) -> Option<(&'static str, &'static str)> {
        match self {
            Kind::Robust => Some(("median", "mad")),
            Kind::Standard => Some(("mean", "std")),
            Kind::MinMax => Some(("min", "max")),
            Kind::Identity => None,
        }
    }

    /// The names plumbline knows, for messages.
    pub const KNOWN: &'static str = "robust, standard, min-max, identity";
}

/// A scaler ready to apply: one centre and one divisor per model input, and the clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    pub kind: Kind,
    /// The centre of each input (median, mean, min, or 0).
    pub center: Vec<f64>,
    /// The spread of each input in raw units (MAD, std, max − min, or 1), before `factor` and
    /// `epsilon`: probes are drawn at the centre ± this.
    pub spread: Vec<f64>,
    /// Multiplies the spread (a robust z-score's 1.4826); 1 when not stated.
    pub factor: f64,
    /// Added to the divisor; 0 when not stated.
    pub epsilon: f64,
    /// The scaled value's bounds, when the pipeline clips.
    pub clip: Option<(f64, f64)>,
}

/// The numbers of a stats vector stored as a list. `None` when it is not a list of numbers (a tensor
/// node's values are not read: header only).
pub fn numbers(v: &Tree) -> Option<Vec<f64>> {
    v.as_array()?.iter().map(Tree::as_f64).collect()
}

/// A factor as stated: a positive number.
pub fn factor(v: &Tree) -> Option<f64> {
    v.as_f64().filter(|x| *x > 0.0)
}

/// An epsilon as stated: a non-negative number.
pub fn epsilon(v: &Tree) -> Option<f64> {
    v.as_f64().filter(|x| *x >= 0.0)
}

/// The constants of a scaler where stated (the defaults apply where not: factor 1, epsilon 0, no clip).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Constants {
    pub factor: Option<f64>,
    pub epsilon: Option<f64>,
    pub clip: Option<(f64, f64)>,
}

/// A clip as stated: a number `c` (±c) or a pair `[low, high]` with low < high.
pub fn clip(v: &Tree) -> Option<(f64, f64)> {
    match v {
        Tree::Number(n) => n.as_f64().filter(|c| *c > 0.0).map(|c| (-c, c)),
        Tree::Array(a) => match a.as_slice() {
            [lo, hi] => Some((lo.as_f64()?, hi.as_f64()?)).filter(|(lo, hi)| lo < hi),
            _ => None,
        },
        _ => None,
    }
}

impl Scaler {
    /// A scaler of `kind` from its two stored statistics (ignored for identity, which needs `n`).
    pub fn new(kind: Kind, stats: Option<(Vec<f64>, Vec<f64>)>, n: usize) -> Scaler {
        let (center, spread) = match (kind, stats) {
            (Kind::MinMax, Some((min, max))) => {
                let range = min.iter().zip(&max).map(|(a, b)| b - a).collect();
                (min, range)
            }
            (Kind::Identity, _) | (_, None) => (vec![0.0; n], vec![1.0; n]),
            (_, Some(pair)) => pair,
        };
        Scaler {
            kind,
            center,
            spread,
            factor: 1.0,
            epsilon: 0.0,
            clip: None,
        }
    }

    /// The divisor of input `j`.
    pub fn divisor(&self, j: usize) -> f64 {
        if self.kind == Kind::Identity {
            return 1.0;
        }
        self.spread[j] * self.factor + self.epsilon
    }

    /// Scale `raw`, one row per input, or one window of bars per row (`window·features` columns, bar
    /// after bar: each bar is scaled as a row).
    pub fn scale(&self, raw: &Matrix, policy: &NanPolicy) -> Matrix {
        let f = self.center.len();
        assert!(
            f > 0 && raw.cols.is_multiple_of(f),
            "scaling {} columns with a scaler of {f}",
            raw.cols
        );
        let divisors: Vec<f64> = (0..f).map(|j| self.divisor(j)).collect();
        let mut out = Vec::with_capacity(raw.data.len());
        for i in 0..raw.rows {
            for (c, &x) in raw.row(i).iter().enumerate() {
                let j = c % f;
                let mut s = (x - self.center[j]) / divisors[j];
                if let Some((lo, hi)) = self.clip {
                    s = s.clamp(lo, hi);
                }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_kind_scales_as_its_formula_says() {
        let raw = Matrix::new(1, 2, vec![3.0, f64::NAN]);
        let zero = NanPolicy::ZeroFill;
        // robust z-score with the normal-consistency factor, an epsilon and a ±3 clip:
        // (3 − 1) / (0.5 × 1.4826 + 1e-8) = 2.6978…, the NaN zero-filled.
        let mut r = Scaler::new(Kind::Robust, Some((vec![1.0, 0.0], vec![0.5, 1.0])), 2);
        (r.factor, r.epsilon) = (1.4826, 1e-8);
        let s = r.scale(&raw, &zero);
        assert!((s.data[0] - 2.0 / (0.5 * 1.4826 + 1e-8)).abs() < 1e-12);
        assert_eq!(s.data[1], 0.0);
        r.clip = Some((-2.5, 2.5));
        assert_eq!(r.scale(&raw, &zero).data[0], 2.5);
        // min-max: (3 − 2) / (6 − 2) = 0.25.
        let m = Scaler::new(Kind::MinMax, Some((vec![2.0, 0.0], vec![6.0, 1.0])), 2);
        assert_eq!(m.scale(&raw, &zero).data[0], 0.25);
        // standard: (3 − 1) / 4; identity: the raw value.
        let st = Scaler::new(Kind::Standard, Some((vec![1.0, 0.0], vec![4.0, 1.0])), 2);
        assert_eq!(st.scale(&raw, &zero).data[0], 0.5);
        let id = Scaler::new(Kind::Identity, None, 2);
        assert_eq!(id.scale(&raw, &NanPolicy::Other("x".into())).data[0], 3.0);
    }

    #[test]
    fn kinds_and_clips_as_teams_write_them() {
        assert_eq!(Kind::parse("Robust"), Some(Kind::Robust));
        assert_eq!(Kind::parse("median_mad"), Some(Kind::Robust));
        assert_eq!(Kind::parse("zscore"), Some(Kind::Standard));
        assert_eq!(Kind::parse("MinMax"), Some(Kind::MinMax));
        assert_eq!(Kind::parse("none"), Some(Kind::Identity));
        assert_eq!(Kind::parse("quantile"), None);
        assert_eq!(clip(&json!(3)), Some((-3.0, 3.0)));
        assert_eq!(clip(&json!([-5, 3.5])), Some((-5.0, 3.5)));
        assert_eq!(clip(&json!([3, -5])), None);
        assert_eq!(clip(&json!(-1)), None);
        assert_eq!(clip(&json!("3")), None);
    }
}
