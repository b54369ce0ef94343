//! Output distributions: the baseline file (`plumbline baseline`) and the statistics that compare a
//! model's outputs with it (decile histograms, class shares, PSI, Jensen–Shannon). The
//! output-distribution gate checks them; the audit packet charts them.

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::contract::Head;
use crate::engine::Outputs;
use crate::error::{Error, Result};
use crate::finding::Location;
use crate::matrix::Matrix;
use crate::slice::Slice;

/// Version of the baseline file format.
pub const BASELINE_FORMAT: u32 = 1;
/// Bins per output (deciles of the baseline).
pub const BINS: usize = 10;
/// Shares are floored at this before PSI and JS (an empty bin would make PSI infinite).
pub const SHARE_FLOOR: f64 = 1e-4;

/// The stored reference distribution (`plumbline baseline`), written canonically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Baseline {
    pub baseline_format: u32,
    pub model_version: String,
    pub slice: SliceId,
    pub heads: BTreeMap<String, HeadBaseline>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SliceId {
    pub path: String,
    pub rows: usize,
    /// The slice file's size (absent in baselines written before plumbline recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HeadBaseline {
    pub kind: String,
    /// Share of rows whose argmax is each class (softmax heads).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_shares: Vec<f64>,
    /// One histogram per output unit (probabilities for softmax heads, values otherwise).
    pub units: Vec<Histogram>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Histogram {
    /// Inner bin edges (bins are (-inf, e0], (e0, e1], …, (e_last, inf)).
    pub edges: Vec<f64>,
    pub shares: Vec<f64>,
}

/// The committed baseline at `rel` (config-relative) and its text; an unreadable, invalid or
/// other-format file is an error naming the file (and line).
pub fn read_baseline(loaded: &crate::config::Loaded, rel: &str) -> Result<(Baseline, String)> {
    let display = loaded.display(rel);
    let path = loaded
        .input("gates.output-distribution.baseline", rel)
        .map_err(|e| Error::msg(format!("{e} (write it with `plumbline baseline`)")))?;
    let text = crate::error::read_to_string(&path)?;
    let base: Baseline = serde_json::from_str(&text).map_err(|e| {
        Error::at(
            Location::at(&display, e.line() as u32),
            format!("invalid baseline: {e}"),
        )
    })?;
    if base.baseline_format != BASELINE_FORMAT {
        return Err(Error::at(
            Location::file(&display),
            format!(
                "baseline-format {} is not {BASELINE_FORMAT}, the format this plumbline reads: rewrite it with `plumbline baseline`",
                base.baseline_format
            ),
        ));
    }
    Ok((base, text))
}

/// A head's outputs as the distributions are taken: probabilities for a softmax head (the softmax of
/// its logits), raw outputs otherwise.
pub fn head_values(head: &Head, raw: &Matrix) -> Matrix {
    if head.kind == "softmax" {
        softmax(raw)
    } else {
        raw.clone()
    }
}

/// Row-wise softmax (the ruleset's, one row at a time).
pub fn softmax(m: &Matrix) -> Matrix {
    let data = (0..m.rows)
        .flat_map(|r| crate::ruleset::softmax(m.row(r)))
        .collect();
    Matrix::new(m.rows, m.cols, data)
}

fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

pub fn class_shares(p: &Matrix) -> Vec<f64> {
    if p.cols == 0 {
        return Vec::new();
    }
    let mut counts = vec![0usize; p.cols];
    for r in 0..p.rows {
        counts[argmax(p.row(r))] += 1;
    }
    counts
        .iter()
        .map(|&c| c as f64 / p.rows.max(1) as f64)
        .collect()
}

/// Decile edges of `values` (deduplicated), and the share of values in each bin.
pub fn histogram(values: &[f64]) -> Histogram {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = Vec::new();
    if !sorted.is_empty() {
        for k in 1..BINS {
            let e = sorted[(k * sorted.len() / BINS).min(sorted.len() - 1)];
            if edges.last() != Some(&e) {
                edges.push(e);
            }
        }
    }
    let shares = bin_shares(&edges, values);
    Histogram { edges, shares }
}

pub fn bin_shares(edges: &[f64], values: &[f64]) -> Vec<f64> {
    let mut counts = vec![0usize; edges.len() + 1];
    for v in values {
        counts[edges.partition_point(|e| e < v)] += 1;
    }
    counts
        .iter()
        .map(|&c| c as f64 / values.len().max(1) as f64)
        .collect()
}

/// Population stability index: Σ (a − e) · ln(a / e), shares floored at [`SHARE_FLOOR`].
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(SHARE_FLOOR), a.max(SHARE_FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// Jensen–Shannon divergence in bits (0 = same, 1 = disjoint).
pub fn js(p: &[f64], q: &[f64]) -> f64 {
    let kl = |a: &[f64], m: &[f64]| -> f64 {
        a.iter()
            .zip(m)
            .filter(|(x, _)| **x > 0.0)
            .map(|(x, y)| x * (x / y).log2())
            .sum()
    };
    let m: Vec<f64> = p.iter().zip(q).map(|(a, b)| 0.5 * (a + b)).collect();
    0.5 * kl(p, &m) + 0.5 * kl(q, &m)
}

/// Per-head values on the slice: probabilities for softmax heads, raw outputs otherwise.
pub struct HeadValues {
    pub head: Head,
    pub values: Matrix,
}

/// The model's outputs on the slice, per contract head: probabilities for softmax heads (the softmax of
/// the logits), raw outputs otherwise; and the contract heads the model does not output.
pub struct Evaluation {
    pub heads: Vec<HeadValues>,
    pub missing: Vec<Head>,
}

/// The model's outputs on the slice (`outputs`, by head name) read per contract head.
pub fn evaluate(outputs: &Outputs, contract_heads: Vec<Head>) -> Evaluation {
    let mut heads = Vec::new();
    let mut missing = Vec::new();
    for head in contract_heads {
        let Some(m) = outputs.get(&head.name) else {
            missing.push(head);
            continue;
        };
        let values = head_values(&head, m);
        heads.push(HeadValues { head, values });
    }
    Evaluation { heads, missing }
}

/// The baseline of the current model on the slice: `eval` is its evaluation on `slice`, read from
/// `slice_path` (config-relative `slice_rel`), for model `model_version`.
pub fn baseline(
    eval: Evaluation,
    slice: &Slice,
    slice_path: &Path,
    slice_rel: &str,
    model_version: String,
) -> Result<Baseline> {
    if let Some(h) = eval.missing.first() {
        return Err(Error::msg(format!(
            "the model does not output head `{}` of the contract; no baseline written",
            h.name
        )));
    }
    for hv in &eval.heads {
        let bad = hv.values.non_finite_rows();
        if let Some(&r) = bad.first() {
            return Err(Error::msg(format!(
                "`{}` is NaN or infinite on {} of {} slice rows (first: {}); no baseline written (`plumbline gate output-distribution` says more)",
                hv.head.name,
                bad.len(),
                slice.len(),
                slice.key(r)
            )));
        }
    }
    let sha = crate::checkpoint::sha256_file(slice_path)?;
    let mut heads = BTreeMap::new();
    for hv in eval.heads {
        heads.insert(
            hv.head.name.clone(),
            HeadBaseline {
                class_shares: if hv.head.kind == "softmax" {
                    class_shares(&hv.values)
                } else {
                    vec![]
                },
                units: (0..hv.values.cols)
                    .map(|j| histogram(&hv.values.column(j)))
                    .collect(),
                kind: hv.head.kind,
            },
        );
    }
    Ok(Baseline {
        baseline_format: BASELINE_FORMAT,
        model_version,
        slice: SliceId {
            path: slice_rel.replace('\\', "/"),
            rows: slice.len(),
            bytes: std::fs::metadata(slice_path).ok().map(|m| m.len()),
            sha256: sha,
        },
        heads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_and_js_agree_with_hand_computed_values() {
        // PSI of (0.5, 0.5) → (0.25, 0.75): (0.25-0.5)ln(0.5) + (0.75-0.5)ln(1.5) = 0.1733 + 0.1014
        let p = psi(&[0.5, 0.5], &[0.25, 0.75]);
        assert!((p - 0.274653).abs() < 1e-6, "{p}");
        assert_eq!(psi(&[0.3, 0.7], &[0.3, 0.7]), 0.0);
        assert!((js(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
        assert_eq!(js(&[0.2, 0.8], &[0.2, 0.8]), 0.0);
    }

    #[test]
    fn deciles_split_evenly_and_rebin_the_same_data_identically() {
        let v: Vec<f64> = (0..1000).map(|i| (i as f64).sin()).collect();
        let h = histogram(&v);
        assert_eq!(h.edges.len(), 9);
        for s in &h.shares {
            assert!((s - 0.1).abs() < 0.002, "{:?}", h.shares);
        }
        assert_eq!(bin_shares(&h.edges, &v), h.shares);
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let p = softmax(&Matrix::new(
            2,
            3,
            vec![1.0, 2.0, 3.0, 1000.0, 0.0, -1000.0],
        ));
        for r in 0..2 {
            assert!((p.row(r).iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert_eq!(class_shares(&p), vec![0.5, 0.0, 0.5]);
    }
}
