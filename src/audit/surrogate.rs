//! The surrogate: a shallow decision tree (CART, Gini; smartcore) fitted to the model's *actions* on the
//! slice's raw features, so its rules read in the units people trade in ("IF vol_20 > 0.0061 AND …
//! THEN flat"). Fidelity is how well the tree reproduces the model on rows it has not seen: the slice is
//! split by time (the latest `holdout` share of timestamps is held out, no timestamp on both sides) and
//! the tree's balanced accuracy on the holdout is set beside the majority-class baseline's. A table
//! gives the fidelity of every depth from 1 to `max-depth + 2`; the exported tree is the depth ≤
//! `max-depth` with the best holdout balanced accuracy (the shallower on a tie).
//!
//! smartcore keeps the fitted nodes private; its `serde` form is the public view of them, and the rules
//! are read from it. Rows are routed with `value <= split` exactly as smartcore predicts, so a rule's
//! support and precision are what the printed condition selects.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::{
    DecisionTreeClassifier, DecisionTreeClassifierParameters, SplitCriterion,
};

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::text::plural;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_depth: usize,
    pub min_leaf: usize,
    pub holdout: f64,
}

/// A fitted tree as plain data.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Split {
        feature: usize,
        value: f64,
        /// `feature <= value`.
        left: Box<Node>,
        right: Box<Node>,
    },
    Leaf {
        class: usize,
    },
}

impl Node {
    pub fn predict(&self, row: &[f64]) -> usize {
        self.leaf_path(row).0
    }

    /// The class and the leaf's index in depth-first (left first) order.
    fn leaf_path(&self, row: &[f64]) -> (usize, usize) {
        let mut node = self;
        let mut index = 0;
        loop {
            match node {
                Node::Leaf { class } => return (*class, index),
                Node::Split {
                    feature,
                    value,
                    left,
                    right,
                } => {
                    if row[*feature] <= *value {
                        node = left;
                    } else {
                        index += left.leaves();
                        node = right;
                    }
                }
            }
        }
    }

    fn leaves(&self) -> usize {
        match self {
            Node::Leaf { .. } => 1,
            Node::Split { left, right, .. } => left.leaves() + right.leaves(),
        }
    }

    pub fn depth(&self) -> usize {
        match self {
            Node::Leaf { .. } => 0,
            Node::Split { left, right, .. } => 1 + left.depth().max(right.depth()),
        }
    }
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Condition {
    pub feature: String,
    /// `<=` or `>`.
    pub op: &'static str,
    pub value: f64,
}

/// One leaf as a rule, with how it does on the rows it selects.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Rule {
    pub conditions: Vec<Condition>,
    pub action: String,
    /// Training rows the conditions select, and their share of the training rows.
    pub support: usize,
    pub support_share: f64,
    /// Share of those rows where the model took `action`.
    pub precision: f64,
    pub holdout_support: usize,
    /// `null` when no holdout row reaches the leaf.
    pub holdout_precision: Option<f64>,
}

impl Rule {
    /// `f <= v AND g > w` with thresholds to 4 significant digits; `TRUE` for a tree with no split.
    pub fn condition_text(&self) -> String {
        if self.conditions.is_empty() {
            return "TRUE".to_owned();
        }
        self.conditions
            .iter()
            .map(|c| format!("{} {} {}", c.feature, c.op, short(c.value)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

/// Fidelity of one depth.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct DepthRow {
    pub depth: usize,
    pub leaves: usize,
    pub train_balanced_accuracy: f64,
    /// The depth is chosen on this: trees fitted to the earlier training rows, scored on the later ones.
    pub validation_balanced_accuracy: f64,
    pub holdout_balanced_accuracy: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Split {
    pub train_rows: usize,
    pub holdout_rows: usize,
    /// The first held-out timestamp.
    pub holdout_from: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Surrogate {
    pub classes: Vec<String>,
    pub split: Split,
    /// Rows left out because a feature is not finite (the tree cannot route them).
    pub rows_skipped: usize,
    pub depth: usize,
    pub holdout_balanced_accuracy: f64,
    pub majority_class: String,
    pub majority_balanced_accuracy: f64,
    pub depth_table: Vec<DepthRow>,
    pub rules: Vec<Rule>,
    /// The exported tree's per-class holdout recall.
    pub holdout_recall: Vec<Option<f64>>,
    #[serde(skip)]
    pub tree: Option<Node>,
}

/// Fit and measure. `x` holds raw features in slice order, `timestamps` their times, `y` the action
/// class per row.
pub fn fit(
    x: &Matrix,
    timestamps: &[String],
    y: &[usize],
    features: &[String],
    classes: &[String],
    settings: Settings,
) -> Result<Surrogate> {
    let keep: Vec<usize> = (0..x.rows)
        .filter(|&r| x.row(r).iter().all(|v| v.is_finite()))
        .collect();
    let rows_skipped = x.rows - keep.len();
    let (train, hold, holdout_from) = time_split(timestamps, &keep, settings.holdout)?;
    let train_y: Vec<usize> = train.iter().map(|&r| y[r]).collect();
    let hold_y: Vec<usize> = hold.iter().map(|&r| y[r]).collect();
    let mut counts = vec![0usize; classes.len()];
    for &c in &train_y {
        counts[c] += 1;
    }
    // The most frequent training class; the first on a tie.
    let majority = (0..classes.len()).fold(0, |b, c| if counts[c] > counts[b] { c } else { b });
    let majority_ba = balanced_accuracy(&hold_y, &vec![majority; hold_y.len()], classes.len()).0;

    // The depth is chosen on a validation part cut from the end of the training rows the same way, so
    // the holdout stays unseen by every choice and its score is an honest fidelity.
    let (fit_rows, val_rows, _) = time_split(timestamps, &train, settings.holdout)?;
    let fit_y: Vec<usize> = fit_rows.iter().map(|&r| y[r]).collect();
    let val_y: Vec<usize> = val_rows.iter().map(|&r| y[r]).collect();
    let mut table = Vec::new();
    let mut best: Option<(f64, Node, f64)> = None;
    for depth in 1..=settings.max_depth + 2 {
        let probe = fit_tree(x, &fit_rows, &fit_y, depth, settings.min_leaf)?;
        let tree = fit_tree(x, &train, &train_y, depth, settings.min_leaf)?;
        let predict = |t: &Node, rows: &[usize]| -> Vec<usize> {
            rows.iter().map(|&r| t.predict(x.row(r))).collect()
        };
        let (val_ba, _) = balanced_accuracy(&val_y, &predict(&probe, &val_rows), classes.len());
        let (train_ba, _) = balanced_accuracy(&train_y, &predict(&tree, &train), classes.len());
        let (hold_ba, _) = balanced_accuracy(&hold_y, &predict(&tree, &hold), classes.len());
        table.push(DepthRow {
            depth,
            leaves: tree.leaves(),
            train_balanced_accuracy: train_ba,
            validation_balanced_accuracy: val_ba,
            holdout_balanced_accuracy: hold_ba,
        });
        if depth <= settings.max_depth && best.as_ref().is_none_or(|(b, _, _)| val_ba > *b) {
            best = Some((val_ba, tree, hold_ba));
        }
    }
    let (_, tree, hold_ba) = best.expect("max-depth ≥ 1");
    let predicted: Vec<usize> = hold.iter().map(|&r| tree.predict(x.row(r))).collect();
    let (_, recall) = balanced_accuracy(&hold_y, &predicted, classes.len());
    let rules = rules(
        &tree,
        x,
        Part {
            rows: &train,
            y: &train_y,
        },
        Part {
            rows: &hold,
            y: &hold_y,
        },
        features,
        classes,
    );
    Ok(Surrogate {
        classes: classes.to_vec(),
        split: Split {
            train_rows: train.len(),
            holdout_rows: hold.len(),
            holdout_from,
        },
        rows_skipped,
        depth: tree.depth(),
        holdout_balanced_accuracy: hold_ba,
        majority_class: classes[majority].clone(),
        majority_balanced_accuracy: majority_ba,
        depth_table: table,
        rules,
        holdout_recall: recall,
        tree: Some(tree),
    })
}

/// Rows before and after the holdout cut (the latest `share` of distinct timestamps). Timestamps
/// compare as numbers when they all are, as text otherwise (ISO 8601 sorts as text).
fn time_split(
    timestamps: &[String],
    rows: &[usize],
    share: f64,
) -> Result<(Vec<usize>, Vec<usize>, String)> {
    let numeric: Option<Vec<f64>> = rows
        .iter()
        .map(|&r| timestamps[r].trim().parse::<f64>().ok())
        .collect();
    let mut order: Vec<usize> = rows.to_vec();
    match &numeric {
        Some(v) => {
            let key: std::collections::HashMap<usize, f64> =
                rows.iter().copied().zip(v.iter().copied()).collect();
            order.sort_by(|a, b| key[a].total_cmp(&key[b]).then(a.cmp(b)));
        }
        None => order.sort_by(|a, b| timestamps[*a].cmp(&timestamps[*b]).then(a.cmp(b))),
    }
    // Distinct times by the key the rows were sorted on (so `1000` and `1e3` are one time).
    let key = |r: usize| -> String {
        match timestamps[r].trim().parse::<f64>() {
            Ok(v) if numeric.is_some() => format!("{v:e}"),
            _ => timestamps[r].clone(),
        }
    };
    let mut distinct: Vec<(String, usize)> = order.iter().map(|&r| (key(r), r)).collect();
    distinct.dedup_by(|a, b| a.0 == b.0);
    if distinct.len() < 2 {
        return Err(Error::msg(
            "the surrogate needs rows from at least two timestamps to hold the latest out (the slice has fewer)",
        ));
    }
    let held = ((distinct.len() as f64 * share).round() as usize).clamp(1, distinct.len() - 1);
    let (cut, first) = distinct[distinct.len() - held].clone();
    let from = timestamps[first].clone();
    let first_held = order
        .iter()
        .position(|&r| key(r) == cut)
        .expect("the cut is one of the timestamps");
    let mut train = order[..first_held].to_vec();
    let mut hold = order[first_held..].to_vec();
    train.sort_unstable();
    hold.sort_unstable();
    Ok((train, hold, from))
}

fn fit_tree(
    x: &Matrix,
    rows: &[usize],
    y: &[usize],
    depth: usize,
    min_leaf: usize,
) -> Result<Node> {
    let cols = x.cols;
    let mut values = Vec::with_capacity(rows.len() * cols);
    for &r in rows {
        values.extend_from_slice(x.row(r));
    }
    let fail = |e: String| Error::msg(format!("the surrogate tree: {e}"));
    let m = DenseMatrix::new(rows.len(), cols, values, false).map_err(|e| fail(e.to_string()))?;
    let labels: Vec<u32> = y.iter().map(|&c| c as u32).collect();
    let params = DecisionTreeClassifierParameters {
        criterion: SplitCriterion::Gini,
        // smartcore counts the root as level 1: a tree with `depth` levels of splits is `depth + 1`.
        max_depth: Some(u16::try_from(depth + 1).map_err(|_| fail("depth too large".into()))?),
        min_samples_leaf: min_leaf,
        min_samples_split: 2 * min_leaf,
        seed: Some(0),
    };
    if labels.iter().all(|&c| c == labels[0]) {
        // One class only: smartcore refuses; the tree is that class.
        return Ok(Node::Leaf {
            class: labels.first().map_or(0, |&c| c as usize),
        });
    }
    let tree = DecisionTreeClassifier::fit(&m, &labels, params).map_err(|e| fail(e.to_string()))?;
    let v = serde_json::to_value(&tree).map_err(|e| fail(e.to_string()))?;
    from_serde(&v).map_err(|e| fail(format!("reading smartcore's fitted nodes: {e}")))
}

/// The tree from smartcore's serde form: `nodes[i] = {output, split_feature, split_value, true_child,
/// false_child, …}` (true child: `value <= split_value`), `classes` the label of each `output`.
fn from_serde(v: &Value) -> std::result::Result<Node, String> {
    let nodes = v["nodes"].as_array().ok_or("no `nodes` list")?;
    let classes: Vec<usize> = v["classes"]
        .as_array()
        .ok_or("no `classes` list")?
        .iter()
        .map(|c| {
            c.as_u64()
                .map(|c| c as usize)
                .ok_or("a class is not a number")
        })
        .collect::<std::result::Result<_, _>>()?;
    fn build(
        nodes: &[Value],
        classes: &[usize],
        i: usize,
        depth: usize,
    ) -> std::result::Result<Node, String> {
        let n = nodes.get(i).ok_or(format!("node {i} is missing"))?;
        if depth > 64 {
            return Err("the tree is deeper than 64".into());
        }
        match (n["true_child"].as_u64(), n["false_child"].as_u64()) {
            (Some(t), Some(f)) => Ok(Node::Split {
                feature: n["split_feature"]
                    .as_u64()
                    .ok_or("a split has no feature")? as usize,
                value: n["split_value"].as_f64().ok_or("a split has no value")?,
                left: Box::new(build(nodes, classes, t as usize, depth + 1)?),
                right: Box::new(build(nodes, classes, f as usize, depth + 1)?),
            }),
            _ => {
                let o = n["output"].as_u64().ok_or("a leaf has no output")? as usize;
                Ok(Node::Leaf {
                    class: *classes.get(o).ok_or("a leaf's output is not a class")?,
                })
            }
        }
    }
    build(nodes, &classes, 0, 0)
}

/// Balanced accuracy (the mean recall over the classes present in `truth`) and each class's recall.
pub fn balanced_accuracy(
    truth: &[usize],
    predicted: &[usize],
    classes: usize,
) -> (f64, Vec<Option<f64>>) {
    let mut hit = vec![0usize; classes];
    let mut total = vec![0usize; classes];
    for (&t, &p) in truth.iter().zip(predicted) {
        total[t] += 1;
        if t == p {
            hit[t] += 1;
        }
    }
    let recall: Vec<Option<f64>> = (0..classes)
        .map(|c| (total[c] > 0).then(|| hit[c] as f64 / total[c] as f64))
        .collect();
    let present: Vec<f64> = recall.iter().flatten().copied().collect();
    let ba = if present.is_empty() {
        f64::NAN
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    };
    (ba, recall)
}

/// Rows of one part of the time split, with their classes.
#[derive(Clone, Copy)]
struct Part<'a> {
    rows: &'a [usize],
    y: &'a [usize],
}

/// The tree's rules, each with its support and precision on the training rows and on the holdout.
fn rules(
    tree: &Node,
    x: &Matrix,
    train: Part,
    hold: Part,
    features: &[String],
    classes: &[String],
) -> Vec<Rule> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    collect(tree, &mut path, &mut out, features, classes);
    let n = tree.leaves();
    let tally = |part: Part| {
        let mut reach = vec![0usize; n];
        let mut right = vec![0usize; n];
        for (&r, &y) in part.rows.iter().zip(part.y) {
            let (class, leaf) = tree.leaf_path(x.row(r));
            reach[leaf] += 1;
            if class == y {
                right[leaf] += 1;
            }
        }
        (reach, right)
    };
    let (reach, right) = tally(train);
    let (h_reach, h_right) = tally(hold);
    for (i, rule) in out.iter_mut().enumerate() {
        rule.support = reach[i];
        rule.support_share = reach[i] as f64 / train.rows.len().max(1) as f64;
        rule.precision = if reach[i] == 0 {
            f64::NAN
        } else {
            right[i] as f64 / reach[i] as f64
        };
        rule.holdout_support = h_reach[i];
        rule.holdout_precision = (h_reach[i] > 0).then(|| h_right[i] as f64 / h_reach[i] as f64);
    }
    out
}

/// Leaves in depth-first order, each with its path's conditions (the tightest bound per feature and
/// direction, in the order the features first appear).
fn collect(
    node: &Node,
    path: &mut Vec<(usize, bool, f64)>,
    out: &mut Vec<Rule>,
    features: &[String],
    classes: &[String],
) {
    match node {
        Node::Leaf { class } => {
            let mut conditions: Vec<Condition> = Vec::new();
            let mut seen: Vec<(usize, bool)> = Vec::new();
            for &(f, le, _) in path.iter() {
                if seen.contains(&(f, le)) {
                    continue;
                }
                seen.push((f, le));
                let bound = path
                    .iter()
                    .filter(|(g, l, _)| *g == f && *l == le)
                    .map(|p| p.2)
                    .fold(
                        if le { f64::INFINITY } else { f64::NEG_INFINITY },
                        |a, v| {
                            if le { a.min(v) } else { a.max(v) }
                        },
                    );
                conditions.push(Condition {
                    feature: features[f].clone(),
                    op: if le { "<=" } else { ">" },
                    value: bound,
                });
            }
            out.push(Rule {
                conditions,
                action: classes[*class].clone(),
                support: 0,
                support_share: 0.0,
                precision: 0.0,
                holdout_support: 0,
                holdout_precision: None,
            });
        }
        Node::Split {
            feature,
            value,
            left,
            right,
        } => {
            path.push((*feature, true, *value));
            collect(left, path, out, features, classes);
            path.pop();
            path.push((*feature, false, *value));
            collect(right, path, out, features, classes);
            path.pop();
        }
    }
}

/// The rules as text, one per line.
pub fn text(s: &Surrogate, title: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!("# {title}\n"));
    out.push_str(&format!(
        "# depth {}, {} rules; fidelity on the holdout (timestamps from {}, {} rows): balanced accuracy {} vs {} for always `{}`\n",
        s.depth,
        s.rules.len(),
        s.split.holdout_from,
        s.split.holdout_rows,
        fixed(s.holdout_balanced_accuracy),
        fixed(s.majority_balanced_accuracy),
        s.majority_class
    ));
    out.push_str("# support and precision on the training rows, the holdout's in brackets; thresholds in raw units, rounded to 4 significant digits (surrogate_rules.json has them exactly)\n");
    for r in &s.rules {
        let cond = r.condition_text();
        let hold = match r.holdout_precision {
            Some(p) => format!(
                "[holdout {}, precision {}]",
                plural(r.holdout_support, "row"),
                fixed(p)
            ),
            None => "[holdout: no rows]".into(),
        };
        out.push_str(&format!(
            "IF {cond} THEN {}  (support {} = {:.1}%, precision {}) {hold}\n",
            r.action,
            plural(r.support, "row"),
            100.0 * r.support_share,
            fixed(r.precision),
        ));
    }
    out
}

/// Four significant digits in scientific notation (Rust's float formatting is exact, so the text is the
/// same on every machine).
pub fn short(v: f64) -> String {
    let sci = format!("{v:.3e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci; // inf, NaN
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-5..=6).contains(&exp) {
        return sci;
    }
    let (sign, digits) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m.replace('.', "")),
        None => ("", mantissa.replace('.', "")),
    };
    // `digits` holds d.ddd as dddd: the point goes after 1 + exp digits.
    let point = 1 + exp;
    let text = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("{sign}{text}")
}

/// Three decimals, for reading.
pub fn fixed(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_print_with_four_significant_digits() {
        for (v, want) in [
            (-0.009601389165361962, "-0.009601"),
            (0.06941742600422472, "0.06942"),
            (0.5, "0.5"),
            (1234.5678, "1235"),
            (120000.0, "120000"),
            (1.5e-9, "1.500e-9"),
            (0.0, "0"),
        ] {
            assert_eq!(short(v), want, "{v}");
        }
    }

    #[test]
    fn balanced_accuracy_is_the_mean_recall_of_present_classes() {
        let (ba, r) = balanced_accuracy(&[0, 0, 0, 1], &[0, 0, 1, 1], 3);
        assert!((ba - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
        assert_eq!(r[2], None);
        // Always predicting the majority: 1 / (classes present).
        assert_eq!(balanced_accuracy(&[0, 0, 0, 1], &[0; 4], 2).0, 0.5);
    }

    #[test]
    fn a_learnable_rule_is_found_and_printed_with_its_numbers() {
        // class = 1 when feature 0 > 0.5, feature 1 is noise; 200 rows over 200 timestamps.
        let n = 200;
        let mut data = Vec::new();
        let mut y = Vec::new();
        let mut ts = Vec::new();
        for i in 0..n {
            let a = ((i * 37) % 100) as f64 / 100.0;
            let b = ((i * 91) % 97) as f64;
            data.extend([a, b]);
            y.push(usize::from(a > 0.5));
            ts.push(format!("{i}"));
        }
        let x = Matrix::new(n, 2, data);
        let s = fit(
            &x,
            &ts,
            &y,
            &["a".into(), "b".into()],
            &["no".into(), "yes".into()],
            Settings {
                max_depth: 3,
                min_leaf: 5,
                holdout: 0.25,
            },
        )
        .unwrap();
        assert_eq!(s.split.holdout_rows, 50);
        assert_eq!(s.split.holdout_from, "150");
        assert_eq!(s.holdout_balanced_accuracy, 1.0);
        assert_eq!(s.depth, 1);
        assert_eq!(s.rules.len(), 2);
        assert_eq!(s.rules[0].conditions[0].feature, "a");
        assert_eq!(s.rules[0].action, "no");
        assert_eq!(s.rules[1].action, "yes");
        assert_eq!(s.rules[0].precision, 1.0);
        let t = text(&s, "test");
        assert!(
            t.contains("IF a <= 0.505 THEN no  (support 77 rows = 51.3%, precision 1.000)"),
            "{t}"
        );
        assert!(t.contains("THEN yes"), "{t}");
    }
}
