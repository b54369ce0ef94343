//! The reference outputs: the outputs PyTorch gave on the same scaled rows, written with the sha256 of
//! the weights they came from and the `arch` of the module that gave them
//! (`python/plumbline_torch.py`). An activation, a slope or a layer without tensors leaves the state
//! dict unchanged: only outputs, and the architecture recorded beside them, show it.

use serde_json::Value;

use super::{ARCH_DIFFERS, REFERENCE_MISMATCH, REFERENCE_MISSING, REFERENCE_STALE, model_failed};
use crate::engine::arch::{self, Arch};
use crate::engine::{Engine, Outputs};
use crate::error::{Error, Result};
use crate::finding::{Finding, Location};
use crate::gates::Context;
use crate::matrix::Matrix;
use crate::scaler::numbers;

/// What the reference check found: the rows compared, the largest difference, the findings.
pub struct Checked {
    pub rows: usize,
    pub worst: f64,
    pub findings: Vec<Finding>,
}

/// The pre-live profile runs the native engine with no reference outputs configured.
pub fn missing(cx: &Context) -> Finding {
    Finding::new(
        &REFERENCE_MISSING,
        "the native engine runs the model from `arch`, and no PyTorch reference outputs say it is the model that was trained",
    )
    .at(production_line(cx))
    .note("an activation, a slope or a layer without tensors (Dropout, an activation) leaves the state dict unchanged: only the outputs show it")
    .help("write the reference with python/plumbline_torch.py (`write_reference`) from the trained module, and set `[gates.forward-contract] reference` (docs/gates/forward-contract.md)")
}

/// The config's line naming the production checkpoint (the model the reference would prove), else the
/// config file.
fn production_line(cx: &Context) -> Location {
    let config = crate::paths::display_path(&cx.loaded.path);
    cx.loaded
        .read_to_string(&cx.loaded.path)
        .ok()
        .and_then(|text| crate::keypath::toml_key(&config, &text, "checkpoints.production").ok())
        .map_or_else(|| Location::file(&config), |f| f.location)
}

/// The reference names other weights (sha256 `stated`, or none) than the production checkpoint's
/// (`now`).
fn stale(cx: &Context, at: Location, stated: Option<&str>, now: &str) -> Finding {
    let msg = match stated {
        Some(h) => format!(
            "the reference outputs were written from weights {h}; the production checkpoint's are {now}"
        ),
        None => format!(
            "the reference outputs state no `weights_sha256`, so nothing ties them to the production checkpoint's weights ({now})"
        ),
    };
    Finding::new(&REFERENCE_STALE, msg)
        .at(at)
        .related(cx.production_location())
        .help("regenerate the reference from the trained module whenever the model is trained again (python/plumbline_torch.py `write_reference` records the hash)")
}

/// The checkpoint's `arch` (at `arch_at`) is not the architecture recorded with the reference.
fn arch_differs(
    cx: &Context,
    arch_at: Location,
    ref_at: Location,
    diffs: &[arch::Difference],
) -> Finding {
    let mut f = Finding::new(
        &ARCH_DIFFERS,
        format!(
            "the checkpoint's `arch` is not the model the reference outputs came from: {}",
            diffs[0].what
        ),
    )
    .at(arch_at)
    .related(ref_at)
    .related(cx.production_location());
    for d in &diffs[1..] {
        f = f.note(d.what.clone());
    }
    f.help("write `arch` from the trained module (python/plumbline_torch.py `arch`), or correct the layer named")
}

/// The model's output differs from the reference output `v` (at `at`), the first of `diff`'s.
fn reference_mismatch(
    cx: &Context,
    at: Location,
    v: &ReferenceValue,
    diff: &ReferenceDiff,
    tol: f64,
) -> Finding {
    Finding::new(
        &REFERENCE_MISMATCH,
        format!(
            "row {}, head `{}`[{}]: the model gives {}, the reference {} (tolerance {tol:e})",
            v.row, v.head, v.k, v.got, v.want
        ),
    )
    .at(at)
    .related(cx.production_location())
    .note(format!(
        "{} row×head outputs differ; largest difference {:e}",
        diff.count, diff.worst
    ))
    .help("the checkpoint is not the model the reference was computed with, `arch` does not describe it (an activation, a slope, or a `forward()` that does more than run its Sequential, such as a residual connection), or the engines disagree")
}

/// Compare with the reference outputs file: rows of `{"scaled": [...], "outputs": {head: [...]}}`,
/// the weights' `weights_sha256` and, when recorded, the module's `arch`.
pub fn check(cx: &Context, engine: &dyn Engine, rel: &str) -> Result<Checked> {
    let path = cx.loaded.input("gates.forward-contract.reference", rel)?;
    let display = cx.loaded.display(rel);
    let text = crate::error::read_to_string(&path)?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| {
        Error::at(
            Location::at(&display, e.line() as u32),
            format!("invalid JSON: {e}"),
        )
    })?;
    let rows = doc
        .get("rows")
        .and_then(|r| r.as_array())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| invalid_reference(&display, "no `rows` list, or an empty one"))?;
    let mut findings = Vec::new();
    findings.extend(stale_finding(cx, engine, &doc, &display, &text)?);
    findings.extend(arch_finding(cx, &doc, &display, &text)?);
    let n = engine.input_dim();
    let inputs = scaled_inputs(rows, n, &display)?;
    let got = match engine.forward(&Matrix::from_rows(n, &inputs)) {
        Ok(o) => o,
        Err(e) => {
            findings.push(model_failed(cx, &e));
            return Ok(Checked {
                rows: rows.len(),
                worst: f64::INFINITY,
                findings,
            });
        }
    };
    let tol = cx.loaded.config.gates.forward_contract.reference_tolerance;
    let diff = compare_reference(rows, &got, tol, &display)?;
    findings.extend(
        diff.first
            .iter()
            .map(|v| reference_mismatch(cx, value_line(&display, &text, v), v, &diff, tol)),
    );
    Ok(Checked {
        rows: rows.len(),
        worst: diff.worst,
        findings,
    })
}

/// A reference written from other weights than the production checkpoint's (by the sha256 over its
/// state dict). An engine that does not read the weights (a command) cannot tell.
fn stale_finding(
    cx: &Context,
    engine: &dyn Engine,
    doc: &Value,
    display: &str,
    text: &str,
) -> Result<Option<Finding>> {
    let now = match engine.weights_sha256() {
        None => return Ok(None),
        Some(Ok(h)) => h,
        Some(Err(e)) => return Ok(Some(model_failed(cx, &e))),
    };
    Ok(match doc.get("weights_sha256") {
        None => Some(stale(cx, Location::file(display), None, &now)),
        Some(v) => {
            let stated = v
                .as_str()
                .ok_or_else(|| invalid_reference(display, "`weights_sha256` must be a string"))?;
            let hex = |h: &str| h.strip_prefix("sha256:").unwrap_or(h).to_ascii_lowercase();
            let at =
                line(display, text, "weights_sha256").unwrap_or_else(|| Location::file(display));
            (hex(stated) != hex(&now)).then(|| stale(cx, at, Some(stated), &now))
        }
    })
}

/// The checkpoint's `arch` against the one recorded with the reference, when one is.
fn arch_finding(cx: &Context, doc: &Value, display: &str, text: &str) -> Result<Option<Finding>> {
    let Some(recorded) = doc.get("arch") else {
        return Ok(None);
    };
    let keys = &cx.loaded.config.checkpoints.keys;
    // An `arch` the engine cannot read is the model-unavailable finding's.
    let Ok(ours) = Arch::read(&cx.facts.production, keys) else {
        return Ok(None);
    };
    let ref_at = line(display, text, "arch").unwrap_or_else(|| Location::file(display));
    let locate = |field: &str| line(display, text, &format!("arch.{field}"));
    let theirs = Arch::parse(
        recorded,
        "arch",
        ref_at.clone(),
        Default::default(),
        &locate,
    )
    .map_err(|e| match e {
        Error::At { location, message } => {
            Error::at(location, format!("reference outputs: {message}"))
        }
        other => Error::msg(format!("reference outputs {display}: {other}")),
    })?;
    let diffs = arch::differences(&ours, &theirs);
    if diffs.is_empty() {
        return Ok(None);
    }
    // The line of the first layer that differs, where the checkpoint's metadata keeps lines.
    // (A first-format `arch` lists Linear modules only: its indices are not the layers'.)
    let info = &cx.facts.production;
    let layer_list = info
        .get(&format!("{}.layers.0", keys.arch))
        .is_some_and(serde_json::Value::is_object);
    let arch_at = diffs[0]
        .layer
        .filter(|_| layer_list)
        .and_then(|i| info.find(&format!("{}.layers.{i}", keys.arch)))
        .or_else(|| info.find(&keys.arch))
        .map_or_else(|| cx.production_location(), |f| f.location);
    Ok(Some(arch_differs(cx, arch_at, ref_at, &diffs)))
}

/// What is wrong with the reference outputs file `display`: an error that stops the run.
fn invalid_reference(display: &str, what: &str) -> Error {
    Error::at(
        Location::file(display),
        format!("reference outputs: {what}"),
    )
}

/// Each reference row's `scaled` inputs, `n` numbers per row.
fn scaled_inputs(rows: &[Value], n: usize, display: &str) -> Result<Vec<Vec<f64>>> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            r.get("scaled")
                .and_then(numbers)
                .filter(|v| v.len() == n)
                .ok_or_else(|| {
                    invalid_reference(
                        display,
                        &format!("row {i} has no `scaled` list of {n} numbers"),
                    )
                })
        })
        .collect()
}

/// One output value the model and the reference disagree on: row, head, index, both values.
struct ReferenceValue {
    row: usize,
    head: String,
    k: usize,
    got: f64,
    want: f64,
}

/// The model's outputs against the reference's: the largest difference, the first value over the
/// tolerance, and how many row × head outputs differ.
#[derive(Default)]
struct ReferenceDiff {
    worst: f64,
    first: Option<ReferenceValue>,
    count: usize,
}

impl ReferenceDiff {
    /// Adds row `i`'s outputs of `head`: the model's (`got`) against the reference's (`want`).
    fn add(&mut self, i: usize, head: &str, got: &[f64], want: &[f64], tol: f64) {
        let mut row_bad = false;
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            let d = (g - w).abs();
            self.worst = self.worst.max(if d.is_nan() { f64::INFINITY } else { d });
            if d.is_nan() || d > tol {
                row_bad = true;
                if self.first.is_none() {
                    self.first = Some(ReferenceValue {
                        row: i,
                        head: head.to_owned(),
                        k,
                        got: *g,
                        want: *w,
                    });
                }
            }
        }
        self.count += usize::from(row_bad);
    }
}

/// The model's outputs `got` against every reference row's `outputs`; an error says what is wrong
/// with the file.
fn compare_reference(
    rows: &[Value],
    got: &Outputs,
    tol: f64,
    display: &str,
) -> Result<ReferenceDiff> {
    let mut diff = ReferenceDiff::default();
    for (i, r) in rows.iter().enumerate() {
        let outs = r
            .get("outputs")
            .and_then(|o| o.as_object())
            .ok_or_else(|| invalid_reference(display, &format!("row {i} has no `outputs` dict")))?;
        if let Some(h) = got.keys().find(|h| !outs.contains_key(*h)) {
            return Err(invalid_reference(
                display,
                &format!("row {i} has no outputs for head `{h}`: every row must hold every head"),
            ));
        }
        for (head, want) in outs {
            let (m, want) = head_values((i, head), want, got, display)?;
            diff.add(i, head, m.row(i), &want, tol);
        }
    }
    Ok(diff)
}

/// The model's output of `head` and row `i`'s reference values for it, as many as the model gives.
fn head_values<'a>(
    (i, head): (usize, &str),
    want: &Value,
    got: &'a Outputs,
    display: &str,
) -> Result<(&'a Matrix, Vec<f64>)> {
    let want = numbers(want).ok_or_else(|| {
        invalid_reference(
            display,
            &format!("row {i} head `{head}` is not a list of numbers"),
        )
    })?;
    let Some(m) = got.get(head) else {
        return Err(invalid_reference(
            display,
            &format!("row {i} names head `{head}`, which the model does not output"),
        ));
    };
    if m.cols != want.len() {
        return Err(invalid_reference(
            display,
            &format!(
                "row {i} head `{head}` has {} values, the model gives {}",
                want.len(),
                m.cols
            ),
        ));
    }
    Ok((m, want))
}

/// The reference file's line of the value `v`, else the file.
fn value_line(display: &str, text: &str, v: &ReferenceValue) -> Location {
    line(
        display,
        text,
        &format!("rows.{}.outputs.{}.{}", v.row, v.head, v.k),
    )
    .unwrap_or_else(|| Location::file(display))
}

/// The reference file's line of `key`, when it has one.
fn line(display: &str, text: &str, key: &str) -> Option<Location> {
    crate::keypath::json_key(display, text, key)
        .ok()
        .map(|f| f.location)
}
