//! The packet as a PDF: a cover, then one section per part of the audit. Charts are vector paths
//! (rectangles and lines), never images.

use super::layout::{
    self, BLACK, BLUE, CONTENT_W, Doc, Font, GREEN, GREY, LIGHT, MARGIN, RED, width,
};
use super::{HeadAttribution, Packet, UnitDistribution};
use crate::audit::surrogate::{Rule, Surrogate, fixed};
use crate::error::{Error, Result};

/// Render the packet.
pub fn pdf(p: &Packet) -> Result<Vec<u8>> {
    let m = &p.manifest;
    let date = layout::date(&m.created).ok_or_else(|| {
        Error::msg(format!(
            "{}: `created` is not an RFC 3339 UTC time (`{}`)",
            p.manifest_path, m.created
        ))
    })?;
    let title = format!(
        "Audit packet: {} model v{}",
        p.contract.pipeline, p.contract.model_version
    );
    let mut doc = Doc::new(format!(
        "plumbline audit packet · {} · model v{} · {}",
        p.contract.pipeline,
        p.contract.model_version,
        short_commit(p)
    ));
    cover(&mut doc, p);
    contract(&mut doc, p);
    gates(&mut doc, p);
    inventory(&mut doc, p);
    distributions(&mut doc, p);
    attribution(&mut doc, p);
    surrogate(&mut doc, p);
    changes(&mut doc, p);
    hashes(&mut doc, p);
    Ok(doc.finish(
        &title,
        &format!(
            "Release-candidate audit of {}, run {}",
            p.contract.pipeline, m.run_sha256
        ),
        date,
    ))
}

fn short_commit(p: &Packet) -> String {
    match &p.manifest.run.git {
        Some(g) => format!(
            "{}{}",
            &g.commit[..g.commit.len().min(12)],
            if g.dirty { " (dirty)" } else { "" }
        ),
        None => "not in git".into(),
    }
}

fn cover(doc: &mut Doc, p: &Packet) {
    cover_title(doc, p);
    cover_verdict(doc, p);
    doc.space(14.0);
    cover_facts(doc, p);
    doc.space(12.0);
    doc.line(Font::Bold, 11.0, BLACK, "Contents");
    for (i, s) in SECTIONS.iter().enumerate() {
        doc.line(Font::Regular, 10.0, BLACK, &format!("{}. {s}", i + 1));
    }
    doc.space(10.0);
    doc.para(
        Font::Regular,
        8.5,
        "Gate verdicts, counts, timings, the commit and the date come from the run manifest of the pre-live check; plumbline refused to build this packet if the config, the derived contract or any checkpoint had changed since that run. The other sections are computed from the same inputs by plumbline audit packet.",
    );
    doc.new_page();
}

/// The cover's title and the pipeline's versions under it.
fn cover_title(doc: &mut Doc, p: &Packet) {
    doc.space(60.0);
    doc.line(Font::Bold, 26.0, BLACK, "Audit packet");
    doc.space(4.0);
    doc.line(
        Font::Regular,
        14.0,
        GREY,
        &format!(
            "{} · model v{} · heads v{}",
            p.contract.pipeline, p.contract.model_version, p.contract.heads_version
        ),
    );
    doc.space(18.0);
}

/// The run's verdict and its finding counts.
fn cover_verdict(doc: &mut Doc, p: &Packet) {
    let run = &p.manifest.run;
    let verdict_color = if run.verdict == "passed" { GREEN } else { RED };
    doc.line(
        Font::Bold,
        20.0,
        verdict_color,
        &format!("Verdict: {}", run.verdict),
    );
    doc.line(
        Font::Regular,
        11.0,
        BLACK,
        &format!(
            "{}, {}, {} · fails at --fail-on {} · {} gates",
            crate::text::plural(run.counts.errors, "error"),
            crate::text::plural(run.counts.warnings, "warning"),
            crate::text::plural(run.counts.notes, "note"),
            run.fail_on.as_str(),
            run.gates.len()
        ),
    );
}

/// The run's facts as label–value pairs: versions, commit, date, profile, environment, hashes.
fn cover_facts(doc: &mut Doc, p: &Packet) {
    let m = &p.manifest;
    let run = &m.run;
    let commit = match &run.git {
        Some(g) => format!(
            "{}{}",
            g.commit,
            if g.dirty {
                " (dirty: tracked files differ from the commit)"
            } else {
                ""
            }
        ),
        None => "the config is not in a git repository".into(),
    };
    doc.pairs(
        &[
            ("Pipeline".into(), p.contract.pipeline.clone()),
            ("Model version".into(), p.contract.model_version.clone()),
            ("Heads version".into(), p.contract.heads_version.clone()),
            ("Git commit".into(), commit),
            ("Run date".into(), m.created.clone()),
            (
                "Profile".into(),
                run.profile.clone().unwrap_or_else(|| "every gate".into()),
            ),
            (
                "Production checkpoint".into(),
                p.contract.production_checkpoint.path.clone(),
            ),
            (
                "Environment".into(),
                format!("{} {}", run.environment.os, run.environment.arch),
            ),
            ("Tool".into(), format!("{} {}", run.tool, run.tool_version)),
            ("Run manifest".into(), p.manifest_path.clone()),
            ("run-sha256".into(), m.run_sha256.clone()),
        ],
        10.0,
        130.0,
    );
}

const SECTIONS: [&str; 8] = [
    "Contract summary",
    "Gate results",
    "Checkpoint inventory",
    "Output distributions against the reference",
    "Attribution per head",
    "Surrogate rules and fidelity",
    "Contract changes against the base branch",
    "Run-manifest hashes",
];

fn section(doc: &mut Doc, n: usize, keep: f32) {
    doc.heading(&format!("{}. {}", n, SECTIONS[n - 1]), keep);
}

fn contract(doc: &mut Doc, p: &Packet) {
    let c = &p.contract;
    section(doc, 1, 80.0);
    doc.pairs(
        &[
            ("Schema hash".into(), c.features.schema_hash.clone()),
            ("NaN policy".into(), c.features.nan_policy.clone()),
            ("Horizon".into(), format!("{} bars", c.targets.horizon)),
            (
                "Thresholds".into(),
                c.targets
                    .thresholds
                    .iter()
                    .map(|(k, v)| format!("{k} = {}", crate::audit::num(*v)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                "Checkpoint".into(),
                format!(
                    "{} ({}, input_dim {})",
                    c.production_checkpoint.path,
                    c.production_checkpoint.format.as_str(),
                    c.production_checkpoint
                        .input_dim
                        .map_or_else(|| crate::contract::NOT_STATED.to_owned(), |d| d.to_string())
                ),
            ),
        ],
        9.0,
        110.0,
    );
    doc.subheading(&format!("Features ({})", c.features.columns.len()), 40.0);
    let rows: Vec<Vec<String>> = c
        .features
        .columns
        .iter()
        .enumerate()
        .map(|(i, f)| vec![i.to_string(), f.name.clone(), f.dtype.clone()])
        .collect();
    doc.table(
        &["#", "feature", "dtype"],
        &[30.0, 200.0, 100.0],
        &[true, false, false],
        &rows,
        9.0,
    );
    doc.subheading(&format!("Heads ({})", c.heads.len()), 40.0);
    let rows: Vec<Vec<String>> = c
        .heads
        .iter()
        .map(|h| {
            vec![
                h.index.to_string(),
                h.name.clone(),
                h.kind.clone(),
                format!("{:?}", h.shape),
            ]
        })
        .collect();
    doc.table(
        &["index", "head", "kind", "shape"],
        &[40.0, 160.0, 120.0, 100.0],
        &[true, false, false, false],
        &rows,
        9.0,
    );
}

fn gates(doc: &mut Doc, p: &Packet) {
    section(doc, 2, 80.0);
    let timings: std::collections::BTreeMap<&str, u64> = p
        .manifest
        .timings_ms
        .iter()
        .map(|t| (t.gate.as_str(), t.ms))
        .collect();
    let rows: Vec<Vec<String>> = p
        .manifest
        .run
        .gates
        .iter()
        .map(|g| {
            let name = if g.verdict == "failed" {
                format!("!{}", g.gate)
            } else {
                g.gate.clone()
            };
            vec![
                name,
                g.verdict.clone(),
                g.counts.errors.to_string(),
                g.counts.warnings.to_string(),
                g.counts.notes.to_string(),
                timings
                    .get(g.gate.as_str())
                    .map_or("—".into(), |ms| format!("{ms} ms")),
            ]
        })
        .collect();
    doc.table(
        &["gate", "verdict", "errors", "warnings", "notes", "time"],
        &[125.0, 183.0, 40.0, 48.0, 35.0, 52.0],
        &[false, false, true, true, true, true],
        &rows,
        8.5,
    );
    let c = &p.manifest.run.counts;
    doc.para(
        Font::Regular,
        9.0,
        &format!(
            "{} gates · {} · {} · {}. Findings are in the run's report; timings are wall time of that run.",
            p.manifest.run.gates.len(),
            crate::text::plural(c.errors, "error"),
            crate::text::plural(c.warnings, "warning"),
            crate::text::plural(c.notes, "note")
        ),
    );
}

fn inventory(doc: &mut Doc, p: &Packet) {
    section(doc, 3, 80.0);
    let rows: Vec<Vec<String>> = p
        .inventory
        .iter()
        .map(|r| {
            vec![
                if r.production {
                    format!("{} (production)", r.path)
                } else {
                    r.path.clone()
                },
                r.format.map_or("?".into(), |f| f.as_str().to_owned()),
                crate::text::thousands(r.size as usize) + " B",
                r.model_version.clone().unwrap_or_else(|| "—".into()),
                r.input_dim.map_or("—".into(), |d| d.to_string()),
                if r.heads.is_empty() {
                    "—".into()
                } else {
                    r.heads.join(", ")
                },
                r.tensors.to_string(),
            ]
        })
        .collect();
    doc.table(
        &[
            "path", "format", "size", "model", "input", "heads", "tensors",
        ],
        &[170.0, 60.0, 65.0, 40.0, 35.0, 75.0, 38.0],
        &[false, false, true, true, true, false, true],
        &rows,
        8.0,
    );
    let hashes: Vec<String> = p
        .inventory
        .iter()
        .map(|r| format!("{}  {}", r.sha256.as_deref().unwrap_or("—"), r.path))
        .collect();
    doc.mono(&hashes.join("\n"), 6.5);
}

fn distributions(doc: &mut Doc, p: &Packet) {
    section(doc, 4, 200.0);
    if let Some(note) = &p.distribution_note {
        doc.para(Font::Regular, 9.0, &format!("Not drawn: {note}."));
        return;
    }
    doc.para(
        Font::Regular,
        9.0,
        &format!(
            "Share of the {} slice rows ({}) in each of the reference baseline's bins (probabilities for softmax heads, raw values otherwise), against the reference. PSI per output unit.",
            crate::text::thousands(p.rows),
            p.slice
        ),
    );
    legend(doc, &[("reference", LIGHT), ("slice (this model)", BLUE)]);
    for h in &p.distributions {
        doc.subheading(&format!("Head `{}` ({})", h.head, h.kind), 170.0);
        // Two charts side by side.
        for pair in h.units.chunks(2) {
            doc.need(165.0);
            let top = doc.y;
            let w = (CONTENT_W - 20.0) / 2.0;
            for (i, u) in pair.iter().enumerate() {
                histogram_chart(doc, MARGIN + i as f32 * (w + 20.0), top, w, 150.0, u);
            }
            doc.y = top - 165.0;
        }
    }
}

fn legend(doc: &mut Doc, items: &[(&str, layout::Rgb)]) {
    doc.need(16.0);
    doc.y -= 14.0;
    let mut x = MARGIN;
    for (label, color) in items {
        doc.fill_rect(x, doc.y + 1.0, 9.0, 7.0, *color);
        doc.stroke_rect(x, doc.y + 1.0, 9.0, 7.0, 0.3, GREY);
        doc.text_at(x + 13.0, doc.y + 1.5, Font::Regular, 8.0, BLACK, label);
        x += 13.0 + width(Font::Regular, 8.0, label) + 18.0;
    }
    doc.space(4.0);
}

/// Grouped bars: per bin, the reference share and the slice share; y from 0 to the largest share.
fn histogram_chart(doc: &mut Doc, x: f32, top: f32, w: f32, h: f32, u: &UnitDistribution) {
    let title = format!("{} · PSI {}", u.label, fixed(u.psi));
    doc.text_at(
        x,
        top - 10.0,
        Font::Bold,
        8.5,
        BLACK,
        &layout::fit(Font::Bold, 8.5, &title, w),
    );
    let (left, bottom) = (x + 28.0, top - h + 14.0);
    let (pw, ph) = (w - 32.0, h - 34.0);
    let max = u
        .reference
        .iter()
        .chain(&u.current)
        .fold(0.0f64, |m, v| m.max(*v))
        .max(1e-9);
    // Axes and gridlines at 0, max/2, max.
    for k in 0..=2 {
        let v = max * k as f64 / 2.0;
        let y = bottom + ph * (k as f32 / 2.0);
        doc.stroke_line(
            left,
            y,
            left + pw,
            y,
            0.3,
            if k == 0 { BLACK } else { LIGHT },
        );
        let label = format!("{:.0}%", 100.0 * v);
        doc.text_at(
            left - 4.0 - width(Font::Regular, 6.5, &label),
            y - 2.0,
            Font::Regular,
            6.5,
            GREY,
            &label,
        );
    }
    doc.stroke_line(left, bottom, left, bottom + ph, 0.5, BLACK);
    let n = u.reference.len().max(1);
    let slot = pw / n as f32;
    let bar = slot * 0.38;
    for i in 0..n {
        let x0 = left + i as f32 * slot + slot * 0.1;
        let r = u.reference.get(i).copied().unwrap_or(0.0);
        let c = u.current.get(i).copied().unwrap_or(0.0);
        let hr = (r / max) as f32 * ph;
        let hc = (c / max) as f32 * ph;
        doc.fill_rect(x0, bottom, bar, hr, LIGHT);
        doc.stroke_rect(x0, bottom, bar, hr, 0.3, GREY);
        doc.fill_rect(x0 + bar, bottom, bar, hc, BLUE);
        let label = (i + 1).to_string();
        doc.text_at(
            x0 + bar - width(Font::Regular, 6.5, &label) / 2.0,
            bottom - 8.0,
            Font::Regular,
            6.5,
            GREY,
            &label,
        );
    }
    let range = match (u.edges.first(), u.edges.last()) {
        (Some(a), Some(b)) => format!("bins 1–{n}, edges {} … {}", short(*a), short(*b)),
        _ => format!("{n} bin"),
    };
    doc.text_at(left, bottom - 17.0, Font::Regular, 6.5, GREY, &range);
}

fn short(v: f64) -> String {
    format!("{v:.3}")
}

fn attribution(doc: &mut Doc, p: &Packet) {
    section(doc, 5, 200.0);
    doc.para(
        Font::Regular,
        9.0,
        &format!(
            "Method: {}. For each head, the mean over its outputs of each feature's importance on the {} slice rows, largest first (`plumbline audit conditions` writes every output's ranking to attribution.csv).",
            p.attribution_method,
            crate::text::thousands(p.rows)
        ),
    );
    for h in &p.attribution {
        bar_chart(doc, h);
    }
}

/// The most bars one chart shows (a page holds about 55); the rest are named in a line below.
const MAX_BARS: usize = 40;

/// Horizontal bars, one per feature, with the value at the end.
fn bar_chart(doc: &mut Doc, h: &HeadAttribution) {
    let row = 12.0;
    let shown = &h.bars[..h.bars.len().min(MAX_BARS)];
    let height = 26.0 + row * shown.len() as f32;
    doc.subheading(
        &format!(
            "Head `{}` ({})",
            h.head,
            crate::text::plural(h.outputs, "output")
        ),
        height,
    );
    doc.need(height);
    let label_w = shown
        .iter()
        .map(|(f, _)| width(Font::Regular, 8.0, f))
        .fold(0.0f32, f32::max)
        + 8.0;
    let left = MARGIN + label_w;
    let pw = CONTENT_W - label_w - 60.0;
    let max = shown.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-12);
    let top = doc.y - 4.0;
    for (i, (feature, v)) in shown.iter().enumerate() {
        let y = top - row * (i as f32 + 1.0);
        doc.text_at(MARGIN, y + 2.5, Font::Regular, 8.0, BLACK, feature);
        let len = (v / max) as f32 * pw;
        doc.fill_rect(left, y + 1.0, len, row - 3.0, BLUE);
        doc.text_at(
            left + len + 4.0,
            y + 2.5,
            Font::Regular,
            7.5,
            GREY,
            &format!("{v:.4}"),
        );
    }
    let axis_y = top - row * shown.len() as f32 - 2.0;
    doc.stroke_line(left, axis_y, left, top, 0.5, BLACK);
    doc.stroke_line(left, axis_y, left + pw, axis_y, 0.5, BLACK);
    doc.y = axis_y - 10.0;
    if h.bars.len() > shown.len() {
        doc.para(
            Font::Regular,
            8.0,
            &format!(
                "{} more features below {:.4}, not drawn.",
                h.bars.len() - shown.len(),
                shown.last().map_or(0.0, |b| b.1)
            ),
        );
    }
}

fn surrogate(doc: &mut Doc, p: &Packet) {
    let s = &p.surrogate;
    section(doc, 6, 120.0);
    doc.para(
        Font::Regular,
        9.0,
        &format!(
            "A decision tree (CART, Gini) fitted to {} on the raw features; the depth is chosen on a validation part at the end of the training rows, and fidelity is balanced accuracy on the latest {} rows (timestamps from {}), held out by time and used for nothing else. Exported depth {}: {} rules, balanced accuracy {} against {} for always `{}` ({:+.3}).",
            p.surrogate_target,
            crate::text::thousands(s.split.holdout_rows),
            s.split.holdout_from,
            s.depth,
            s.rules.len(),
            fixed(s.holdout_balanced_accuracy),
            fixed(s.majority_balanced_accuracy),
            s.majority_class,
            s.holdout_balanced_accuracy - s.majority_balanced_accuracy
        ),
    );
    depth_table(doc, s);
    doc.subheading(
        "Rules (thresholds in raw units, 4 significant digits; support and precision on the training rows)",
        40.0,
    );
    for r in &s.rules {
        surrogate_rule(doc, r);
    }
}

/// The surrogate's balanced accuracies at each depth tried, the exported one marked.
fn depth_table(doc: &mut Doc, s: &Surrogate) {
    let rows: Vec<Vec<String>> = s
        .depth_table
        .iter()
        .map(|d| {
            vec![
                d.depth.to_string(),
                d.leaves.to_string(),
                fixed(d.train_balanced_accuracy),
                fixed(d.validation_balanced_accuracy),
                fixed(d.holdout_balanced_accuracy),
                if d.depth == s.depth {
                    "exported".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    doc.table(
        &[
            "depth",
            "leaves",
            "train BA",
            "validation BA",
            "holdout BA",
            "",
        ],
        &[45.0, 45.0, 65.0, 75.0, 70.0, 80.0],
        &[true, true, true, true, true, false],
        &rows,
        8.5,
    );
}

/// One rule: its action and numbers, then its conditions, kept on one page.
fn surrogate_rule(doc: &mut Doc, r: &Rule) {
    let cond = r.condition_text();
    let lines = layout::wrap(Font::Regular, 8.0, &format!("IF {cond}"), CONTENT_W - 12.0);
    doc.need(12.0 * (lines.len() as f32 + 1.0) + 4.0);
    let hold = match r.holdout_precision {
        Some(p) => format!(
            "holdout {}, precision {}",
            crate::text::plural(r.holdout_support, "row"),
            fixed(p)
        ),
        None => "holdout: no rows".into(),
    };
    doc.line(
        Font::Bold,
        8.5,
        BLACK,
        &format!(
            "THEN {} · support {} ({:.1}%) · precision {} · {hold}",
            r.action,
            crate::text::plural(r.support, "row"),
            100.0 * r.support_share,
            fixed(r.precision)
        ),
    );
    for l in lines {
        doc.line(Font::Regular, 8.0, BLACK, &format!("    {l}"));
    }
    doc.space(3.0);
}

fn changes(doc: &mut Doc, p: &Packet) {
    section(doc, 7, 60.0);
    let Some(c) = &p.changes else {
        doc.para(
            Font::Regular,
            9.0,
            "Not classified: the packet was built without --base REF (plumbline audit packet --base main compares the committed docs contract at the merge base with this one).",
        );
        return;
    };
    doc.para(
        Font::Regular,
        9.0,
        &format!("Against {}.", c.base.replace('`', "")),
    );
    if c.changes.is_empty() {
        doc.para(Font::Regular, 9.0, "No contract change.");
        return;
    }
    let rows: Vec<Vec<String>> = c
        .changes
        .iter()
        .map(|ch| {
            vec![
                ch.rule.clone(),
                ch.change.replace('`', ""),
                if ch.accepted {
                    "accepted".into()
                } else {
                    String::new()
                },
                ch.severity.as_str().to_owned(),
            ]
        })
        .collect();
    doc.table(
        &["rule", "change", "", "severity"],
        &[120.0, 270.0, 50.0, 43.0],
        &[false, false, false, false],
        &rows,
        8.0,
    );
}

fn hashes(doc: &mut Doc, p: &Packet) {
    section(doc, 8, 80.0);
    let run = &p.manifest.run;
    let mut rows = vec![
        vec![
            "run".into(),
            "the manifest's `run` (canonical JSON)".into(),
            p.manifest.run_sha256.clone(),
        ],
        vec![
            "manifest file".into(),
            p.manifest_path.clone(),
            p.manifest_sha256.clone(),
        ],
        vec![
            "config".into(),
            run.config.path.clone(),
            run.config.sha256.clone(),
        ],
        vec![
            "contract".into(),
            "derived contract (canonical JSON)".into(),
            run.contract_sha256
                .clone()
                .unwrap_or_else(|| "not derived".into()),
        ],
    ];
    for c in &run.checkpoints {
        rows.push(vec!["checkpoint".into(), c.path.clone(), c.sha256.clone()]);
    }
    for d in &run.data {
        rows.push(vec!["data".into(), d.path.clone(), d.sha256.clone()]);
    }
    if let Some(g) = &run.git {
        rows.push(vec![
            "git commit".into(),
            if g.dirty { "HEAD (dirty)" } else { "HEAD" }.into(),
            g.commit.clone(),
        ]);
    }
    doc.table(
        &["what", "file", "sha256"],
        &[58.0, 150.0, 275.0],
        &[false, false, false],
        &rows,
        6.8,
    );
}
