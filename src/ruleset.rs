//! The interpretation ruleset: thresholds, sizing and risk gates as data (a TOML file the backtest and
//! live interpreters both read), and plumbline's reference interpreter of it, with the inputs gates feed
//! it: slice rows (`SliceRow`), a row with one value overridden, and the synthetic rows that push each
//! risk gate past its bound (`extremes`). Schema: `schemas/ruleset.schema.json`; semantics:
//! docs/ruleset.md.

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::finding::Location;
use crate::matrix::Matrix;
use crate::paths::display_path;
use crate::slice::Slice;

pub const RULESET_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(
    title = "ruleset.toml",
    description = "How a trading pipeline turns model outputs into actions (plumbline's interpretation contract)."
)]
pub struct Ruleset {
    /// Version of this format (1).
    pub ruleset_format: u32,
    pub signal: Signal,
    pub sizing: Sizing,
    /// Checked in file order; any gate that blocks turns the action flat with size 0.
    #[serde(default)]
    pub risk_gates: Vec<RiskGate>,
}

/// Which side to take, from a softmax head's probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Signal {
    /// A softmax head; interpreters apply softmax to its logits.
    pub head: String,
    /// The meaning of each class index; must hold `long` and `short`.
    pub classes: Vec<String>,
    /// Long when p(long) ≥ enter-long and p(long) ≥ p(short).
    pub enter_long: f64,
    /// Otherwise short when p(short) ≥ enter-short; otherwise flat.
    pub enter_short: f64,
}

/// How much, from a regression head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Sizing {
    pub head: String,
    /// size = min(max-size, per-unit · |head output 0|); 0 when flat.
    pub per_unit: f64,
    pub max_size: f64,
}

/// A risk gate reads exactly one value: a raw feature (`feature.NAME`) or a head output
/// (`head.NAME.K`: the probability of class K for a softmax head, the raw output K otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RiskGate {
    pub name: String,
    /// `feature.NAME` or `head.NAME.K`.
    #[schemars(regex(pattern = r"^(feature\.[A-Za-z0-9_]+|head\.[A-Za-z0-9_]+\.[0-9]+)$"))]
    pub reads: String,
    /// Block when the value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_above: Option<f64>,
    /// Block when the value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_below: Option<f64>,
}

/// What a risk gate reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Feature(String),
    Head(String, usize),
}

impl RiskGate {
    pub fn read(&self) -> Option<Read> {
        // The schema's pattern: names of letters, digits and `_`.
        let name_ok =
            |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let mut parts = self.reads.split('.');
        match (parts.next()?, parts.next()?, parts.next(), parts.next()) {
            ("feature", name, None, None) if name_ok(name) => Some(Read::Feature(name.to_owned())),
            ("head", name, Some(k), None) if name_ok(name) => {
                Some(Read::Head(name.to_owned(), k.parse().ok()?))
            }
            _ => None,
        }
    }

    /// Whether this gate blocks `value` (NaN always blocks: fail closed).
    pub fn blocks(&self, value: f64) -> bool {
        value.is_nan()
            || self.block_above.is_some_and(|a| value > a)
            || self.block_below.is_some_and(|b| value < b)
    }
}

/// A ruleset file, parsed, with its text for line lookups.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub ruleset: Ruleset,
    pub path: String,
    pub text: String,
}

impl Loaded {
    /// The line of a key (`signal.enter-long`, `risk-gates.1.name`).
    pub fn location(&self, key: &str) -> Location {
        crate::keypath::toml_key(&self.path, &self.text, key)
            .map(|f| f.location)
            .unwrap_or_else(|_| Location::file(&self.path))
            .with_label(key.to_owned())
    }
}

pub fn load(path: &Path) -> Result<Loaded> {
    let display = display_path(path);
    let text = crate::error::read_to_string(path)?;
    let ruleset: Ruleset = crate::config::parse_toml(&text, &display)?;
    if ruleset.ruleset_format != RULESET_FORMAT {
        return Err(Error::at(
            Location::file(&display),
            format!(
                "ruleset-format {} is not {RULESET_FORMAT}, the format this plumbline reads",
                ruleset.ruleset_format
            ),
        ));
    }
    Ok(Loaded {
        ruleset,
        path: display,
        text,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Long,
    Short,
    Flat,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Long => "long",
            Side::Short => "short",
            Side::Flat => "flat",
        }
    }

    pub fn parse(s: &str) -> Option<Side> {
        Some(match s {
            "long" => Side::Long,
            "short" => Side::Short,
            "flat" => Side::Flat,
            _ => return None,
        })
    }
}

/// One decision: the side, the size and each risk gate's verdict (true = blocked), in ruleset order.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub side: Side,
    pub size: f64,
    pub blocked: Vec<bool>,
}

/// One row of inputs: a head's raw outputs by name, and raw features by name.
pub trait RowInputs {
    fn head(&self, name: &str) -> Option<Vec<f64>>;
    fn feature(&self, name: &str) -> Option<f64>;
}

pub fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|v| (v - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// The reference interpreter (docs/ruleset.md). `softmax_heads` names the heads whose outputs are
/// logits (a risk gate reading them reads probabilities).
pub fn interpret(rs: &Ruleset, row: &dyn RowInputs, softmax_heads: &[&str]) -> Decision {
    let class = |name: &str| rs.signal.classes.iter().position(|c| c == name);
    let p = row
        .head(&rs.signal.head)
        .map(|l| softmax(&l))
        .unwrap_or_default();
    let prob = |c: Option<usize>| c.and_then(|i| p.get(i).copied()).unwrap_or(f64::NAN);
    let (pl, ps) = (prob(class("long")), prob(class("short")));
    let mut side = if pl >= rs.signal.enter_long && pl >= ps {
        Side::Long
    } else if ps >= rs.signal.enter_short {
        Side::Short
    } else {
        Side::Flat
    };
    let magnitude = row
        .head(&rs.sizing.head)
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN);
    let raw = rs.sizing.per_unit * magnitude.abs();
    let mut size = match side {
        Side::Flat => 0.0,
        // f64::min would hide a NaN; a NaN size must stay visible.
        _ if raw.is_nan() => f64::NAN,
        _ => raw.min(rs.sizing.max_size),
    };
    let blocked: Vec<bool> = rs
        .risk_gates
        .iter()
        .map(|g| {
            let value = match g.read() {
                Some(Read::Feature(f)) => row.feature(&f).unwrap_or(f64::NAN),
                Some(Read::Head(h, k)) => {
                    let v = row.head(&h).unwrap_or_default();
                    let v = if softmax_heads.contains(&h.as_str()) {
                        softmax(&v)
                    } else {
                        v
                    };
                    v.get(k).copied().unwrap_or(f64::NAN)
                }
                None => f64::NAN,
            };
            g.blocks(value)
        })
        .collect();
    if blocked.iter().any(|b| *b) {
        side = Side::Flat;
        size = 0.0;
    }
    Decision {
        side,
        size,
        blocked,
    }
}

/// One slice row (or a synthetic one) as interpreter input: raw head outputs and raw features.
pub struct SliceRow<'a> {
    pub outputs: &'a BTreeMap<String, Matrix>,
    pub slice: &'a Slice,
    pub names: &'a [String],
    pub row: usize,
}

impl RowInputs for SliceRow<'_> {
    fn head(&self, name: &str) -> Option<Vec<f64>> {
        self.outputs.get(name).map(|m| m.row(self.row).to_vec())
    }
    fn feature(&self, name: &str) -> Option<f64> {
        let j = self.names.iter().position(|n| n == name)?;
        Some(self.slice.features.row(self.row)[j])
    }
}

impl<T: RowInputs + ?Sized> RowInputs for &T {
    fn head(&self, name: &str) -> Option<Vec<f64>> {
        (**self).head(name)
    }
    fn feature(&self, name: &str) -> Option<f64> {
        (**self).feature(name)
    }
}

/// A row with one value overridden.
pub struct Overridden<'a> {
    pub base: &'a dyn RowInputs,
    pub head: Option<(String, Vec<f64>)>,
    pub feature: Option<(String, f64)>,
}

impl RowInputs for Overridden<'_> {
    fn head(&self, name: &str) -> Option<Vec<f64>> {
        match &self.head {
            Some((h, v)) if h == name => Some(v.clone()),
            _ => self.base.head(name),
        }
    }
    fn feature(&self, name: &str) -> Option<f64> {
        match &self.feature {
            Some((f, v)) if f == name => Some(*v),
            _ => self.base.feature(name),
        }
    }
}

/// One synthetic input per risk-gate bound: `base` with the gate's input pushed past the bound, within
/// what the value can be (a softmax head's probability goes to 1 or 0 through its logits).
pub struct Extreme<'a> {
    pub gate: usize,
    /// `true` for `block-above`, `false` for `block-below`.
    pub up: bool,
    /// What was set, for messages (`feature `vol_20` = 10.0095`).
    pub what: String,
    pub row: Overridden<'a>,
}

pub fn extremes<'a>(
    rs: &Ruleset,
    base: &'a dyn RowInputs,
    softmax: &[&str],
    head_width: impl Fn(&str) -> Option<usize>,
) -> Vec<Extreme<'a>> {
    let mut out = Vec::new();
    for (i, g) in rs.risk_gates.iter().enumerate() {
        for (bound, up) in [(g.block_above, true), (g.block_below, false)] {
            let Some(bound) = bound else { continue };
            let pushed = if up {
                bound + 10.0 * bound.abs().max(1.0)
            } else {
                bound - 10.0 * bound.abs().max(1.0)
            };
            let (what, head, feature) = match g.read() {
                Some(Read::Feature(f)) => {
                    (format!("feature `{f}` = {pushed}"), None, Some((f, pushed)))
                }
                Some(Read::Head(h, k)) if softmax.contains(&h.as_str()) => {
                    let Some(w) = head_width(&h) else { continue };
                    // All mass on class k (p → 1) or none on it (p → 0), from saturated logits: ±1000,
                    // where a softmax that does not subtract the largest logit overflows (exp(2000)).
                    let logits: Vec<f64> = (0..w)
                        .map(|j| if (j == k) == up { 1000.0 } else { -1000.0 })
                        .collect();
                    (
                        format!("p({h}.{k}) = {}", if up { "1" } else { "0" }),
                        Some((h, logits)),
                        None,
                    )
                }
                Some(Read::Head(h, k)) => {
                    let Some(w) = head_width(&h) else { continue };
                    let mut v = base.head(&h).unwrap_or_else(|| vec![0.0; w]);
                    if k < v.len() {
                        v[k] = pushed;
                    }
                    (format!("{h}[{k}] = {pushed}"), Some((h, v)), None)
                }
                None => continue,
            };
            out.push(Extreme {
                gate: i,
                up,
                what,
                row: Overridden {
                    base,
                    head,
                    feature,
                },
            });
        }
    }
    out
}

/// Inputs on a risk gate's bound and one float step either side of it: `base` with the gate's input
/// set to `bound`, the float just below and the float just above. A tie does not block (`block-above`
/// blocks a value strictly above its bound), so an interpreter that compares with `>=` differs on the
/// probe that sits exactly on it. Only gates that read a feature or a regression head get these: the
/// number compared is then the one written, exactly; a softmax head's probability is computed from
/// logits by each interpreter, and may round differently on each side of a bound.
pub struct BoundProbe<'a> {
    pub gate: usize,
    /// `below`, `at` or `above`: where the value sits against the bound.
    pub place: &'static str,
    /// Which bound (`block-above` or `block-below`).
    pub bound: &'static str,
    pub row: Overridden<'a>,
}

pub fn bound_probes<'a>(
    rs: &Ruleset,
    base: &'a dyn RowInputs,
    softmax: &[&str],
    head_width: impl Fn(&str) -> Option<usize>,
) -> Vec<BoundProbe<'a>> {
    let mut out = Vec::new();
    for (i, g) in rs.risk_gates.iter().enumerate() {
        for (bound, name) in [
            (g.block_above, "block-above"),
            (g.block_below, "block-below"),
        ] {
            let Some(b) = bound else { continue };
            for (place, v) in [("below", b.next_down()), ("at", b), ("above", b.next_up())] {
                let (head, feature) = match g.read() {
                    Some(Read::Feature(f)) => (None, Some((f, v))),
                    Some(Read::Head(h, k)) if !softmax.contains(&h.as_str()) => {
                        let Some(w) = head_width(&h) else { continue };
                        let mut values = base.head(&h).unwrap_or_else(|| vec![0.0; w]);
                        if k >= values.len() {
                            continue;
                        }
                        values[k] = v;
                        (Some((h, values)), None)
                    }
                    _ => continue,
                };
                out.push(BoundProbe {
                    gate: i,
                    place,
                    bound: name,
                    row: Overridden {
                        base,
                        head,
                        feature,
                    },
                });
            }
        }
    }
    out
}

/// The probability tie probes sit on. With two logits at `HIGH` and every other at 0, softmax is exactly
/// 1/2 for the two in every implementation that subtracts the largest logit first (as a softmax must):
/// exp(0) is 1, exp(-1000) underflows to 0, and 1/2 is exact; one that does not overflows. No
/// other probability is: the exponential of any other number is rounded, and libraries round it
/// differently in the last bit, so a probe aimed at a bound such as 0.45 could land either side of it.
pub const TIE: f64 = 0.5;
const HIGH: f64 = 1000.0;

/// Whether risk gate `g` compares a probability (it reads a softmax head).
fn reads_probability(g: &RiskGate, softmax: &[&str]) -> bool {
    matches!(g.read(), Some(Read::Head(h, _)) if softmax.contains(&h.as_str()))
}

/// `rs` with every bound a probability is compared with moved onto `TIE`: both entry thresholds, and the
/// bounds of the risk gates that read a softmax head. The tie probes run on it, so an interpreter that
/// breaks a tie on one of those bounds the other way shows, whatever the ruleset's own numbers are.
pub fn tie_ruleset(rs: &Ruleset, softmax: &[&str]) -> Ruleset {
    let mut tie = rs.clone();
    tie.signal.enter_long = TIE;
    tie.signal.enter_short = TIE;
    for g in &mut tie.risk_gates {
        if reads_probability(g, softmax) {
            g.block_above = g.block_above.map(|_| TIE);
            g.block_below = g.block_below.map(|_| TIE);
        }
    }
    tie
}

/// A row whose softmax head `head` puts exactly `TIE` on classes `pair` and 0 on every other class.
pub struct TieProbe<'a> {
    pub head: String,
    pub pair: (usize, usize),
    pub row: Overridden<'a>,
}

/// For the signal head and every softmax head a risk gate reads, one row per pair of its classes at
/// `TIE` each, built on `base` (which should pass every gate that reads a feature or a regression head,
/// so no other gate hides the tie). On `tie_ruleset`, each such row sits exactly on the entry thresholds
/// and on the probability bounds of the classes it holds.
pub fn tie_probes<'a>(
    rs: &Ruleset,
    base: &'a dyn RowInputs,
    softmax: &[&str],
    head_width: impl Fn(&str) -> Option<usize>,
) -> Vec<TieProbe<'a>> {
    let mut heads = vec![rs.signal.head.clone()];
    for g in &rs.risk_gates {
        if let Some(Read::Head(h, _)) = g.read()
            && softmax.contains(&h.as_str())
            && !heads.contains(&h)
        {
            heads.push(h);
        }
    }
    let mut out = Vec::new();
    for h in heads {
        let Some(w) = head_width(&h) else { continue };
        for a in 0..w {
            for b in a + 1..w {
                let logits = (0..w)
                    .map(|j| if j == a || j == b { HIGH } else { 0.0 })
                    .collect();
                out.push(TieProbe {
                    head: h.clone(),
                    pair: (a, b),
                    row: Overridden {
                        base,
                        head: Some((h.clone(), logits)),
                        feature: None,
                    },
                });
            }
        }
    }
    out
}

/// The first of `rows` on which no risk gate that reads a feature or a regression head blocks: the
/// base of the tie probes. `None` when every row is blocked by one (a tie probe on it would be flat
/// whatever the interpreters do with the tie).
pub fn unblocked_row<R: RowInputs>(
    rs: &Ruleset,
    rows: impl IntoIterator<Item = R>,
    softmax: &[&str],
) -> Option<usize> {
    rows.into_iter().position(|r| {
        let d = interpret(rs, &r, softmax);
        rs.risk_gates
            .iter()
            .zip(&d.blocked)
            .all(|(g, b)| reads_probability(g, softmax) || !b)
    })
}

/// For each risk gate: does it block, and turn the action flat, on an input pushed past its bound?
/// Returns the gates that do not, with why.
pub fn extreme_failures(
    rs: &Ruleset,
    base: &dyn RowInputs,
    softmax: &[&str],
    head_width: impl Fn(&str) -> Option<usize>,
) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for e in extremes(rs, base, softmax, head_width) {
        let d = interpret(rs, &e.row, softmax);
        if !d.blocked[e.gate] || d.side != Side::Flat {
            out.push((e.gate, format!("risk gate `{}` does not block with {} (its bound cannot be crossed, or it does not turn the action flat)", rs.risk_gates[e.gate].name, e.what)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Row(
        BTreeMap<&'static str, Vec<f64>>,
        BTreeMap<&'static str, f64>,
    );
    impl RowInputs for Row {
        fn head(&self, name: &str) -> Option<Vec<f64>> {
            self.0.get(name).cloned()
        }
        fn feature(&self, name: &str) -> Option<f64> {
            self.1.get(name).copied()
        }
    }

    fn ruleset() -> Ruleset {
        toml::from_str(
            r#"
ruleset-format = 1
[signal]
head = "direction"
classes = ["short", "flat", "long"]
enter-long = 0.5
enter-short = 0.4
[sizing]
head = "magnitude"
per-unit = 0.5
max-size = 1.0
[[risk-gates]]
name = "vol"
reads = "feature.vol_20"
block-above = 0.02
[[risk-gates]]
name = "flat-conf"
reads = "head.direction.1"
block-above = 0.6
"#,
        )
        .unwrap()
    }

    fn row(logits: [f64; 3], magnitude: f64, vol: f64) -> Row {
        Row(
            BTreeMap::from([
                ("direction", logits.to_vec()),
                ("magnitude", vec![magnitude]),
            ]),
            BTreeMap::from([("vol_20", vol)]),
        )
    }

    #[test]
    fn sides_sizes_and_gates_follow_the_documented_rules() {
        let rs = ruleset();
        let soft = ["direction"];
        // p = softmax([0, 0, 2]) = (0.106, 0.106, 0.787): long; size min(1, 0.5·3) = 1 (capped).
        let d = interpret(&rs, &row([0.0, 0.0, 2.0], -3.0, 0.01), &soft);
        assert_eq!(
            (d.side, d.size, d.blocked.clone()),
            (Side::Long, 1.0, vec![false, false])
        );
        // p(short) = 0.787: short, size 0.5·0.4 = 0.2.
        let d = interpret(&rs, &row([2.0, 0.0, 0.0], 0.4, 0.01), &soft);
        assert_eq!((d.side, d.size), (Side::Short, 0.2));
        // Equal logits: p = 1/3 each, below both thresholds: flat.
        let d = interpret(&rs, &row([0.0, 0.0, 0.0], 1.0, 0.01), &soft);
        assert_eq!((d.side, d.size), (Side::Flat, 0.0));
        // The volatility gate blocks a long.
        let d = interpret(&rs, &row([0.0, 0.0, 2.0], 1.0, 0.03), &soft);
        assert_eq!(
            (d.side, d.size, d.blocked),
            (Side::Flat, 0.0, vec![true, false])
        );
        // p(flat) read as a probability: softmax([0, 3, 0]) has p(flat) = 0.91 > 0.6.
        let d = interpret(&rs, &row([0.0, 3.0, 0.0], 1.0, 0.01), &soft);
        assert_eq!(d.blocked, vec![false, true]);
        // A NaN feature blocks (fail closed); a NaN magnitude is a NaN size, not max-size.
        assert!(interpret(&rs, &row([0.0, 0.0, 2.0], 1.0, f64::NAN), &soft).blocked[0]);
        assert!(
            interpret(&rs, &row([0.0, 0.0, 2.0], f64::NAN, 0.01), &soft)
                .size
                .is_nan()
        );
    }

    /// Each tie probe puts exactly 1/2 on its two classes, and on the tie ruleset a `>` where the rule
    /// says `>=` (or the reverse, for a gate) changes a decision on at least one probe.
    #[test]
    fn tie_probes_sit_exactly_on_the_moved_bounds() {
        let rs = ruleset();
        let soft = ["direction"];
        let tie = tie_ruleset(&rs, &soft);
        assert_eq!((tie.signal.enter_long, tie.signal.enter_short), (TIE, TIE));
        // The feature gate keeps its bound; the probability gate moves onto the tie.
        assert_eq!(tie.risk_gates[0].block_above, Some(0.02));
        assert_eq!(tie.risk_gates[1].block_above, Some(TIE));
        let base = row([0.0; 3], 0.4, 0.01);
        let probes = tie_probes(&rs, &base, &soft, |_| Some(3));
        let pairs: Vec<_> = probes.iter().map(|p| p.pair).collect();
        assert_eq!(pairs, [(0, 1), (0, 2), (1, 2)]);
        for p in &probes {
            let probs = softmax(&p.row.head("direction").unwrap());
            assert_eq!((probs[p.pair.0], probs[p.pair.1]), (TIE, TIE));
        }
        let sides: Vec<Side> = probes
            .iter()
            .map(|p| interpret(&tie, &p.row, &soft).side)
            .collect();
        // short+flat: short on the tie; short+long: long (p(long) >= p(short)); flat+long: long.
        assert_eq!(sides, [Side::Short, Side::Long, Side::Long]);
        // An interpreter entering long only strictly above enter-long goes flat on flat+long.
        let strict = |p: &TieProbe| {
            let probs = softmax(&p.row.head("direction").unwrap());
            probs[2] > tie.signal.enter_long && probs[2] >= probs[0]
        };
        assert!(!strict(&probes[2]));
        // A flat-confidence gate blocking on its bound (`>=`) would block flat+long; the rule passes it.
        assert!(!interpret(&tie, &probes[2].row, &soft).blocked[1]);
        // The base row of the probes is the first on which the feature gate passes.
        let rows = [row([0.0; 3], 0.4, 0.5), row([0.0; 3], 0.4, 0.01)];
        assert_eq!(unblocked_row(&rs, rows.iter(), &soft), Some(1));
        assert_eq!(unblocked_row(&rs, rows[..1].iter(), &soft), None);
    }

    #[test]
    fn reads_parse() {
        let g = |r: &str| RiskGate {
            name: "g".into(),
            reads: r.into(),
            block_above: Some(1.0),
            block_below: None,
        };
        assert_eq!(
            g("feature.vol_20").read(),
            Some(Read::Feature("vol_20".into()))
        );
        assert_eq!(
            g("head.direction.1").read(),
            Some(Read::Head("direction".into(), 1))
        );
        for bad in [
            "feature.",
            "head.direction",
            "head.direction.x",
            "model.x",
            "feature.a.b",
            "feature.vol-20",
        ] {
            assert_eq!(g(bad).read(), None, "{bad}");
        }
    }
}
