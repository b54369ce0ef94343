//! The Markdown bodies of the generated blocks, rendered from the contract. One function per block name.

use std::fmt::Write;

use crate::contract::PipelineContract;

/// Block names plumbline can generate, in the order the example docs use them.
pub const BLOCK_NAMES: &[&str] = &[
    "versions",
    "features",
    "targets",
    "heads",
    "production-checkpoint",
    "hashes",
];

/// The scaler as docs show it: `robust (median: 14, mad: 14)`, then its constants where stated.
fn scaler_text(sc: &crate::contract::Scaler) -> String {
    // The kind's two statistics in its order (centre first); any other listing in the contract's order.
    let names: Vec<&str> =
        match crate::scaler::Kind::parse(&sc.kind).and_then(crate::scaler::Kind::stats) {
            Some((a, b))
                if sc.stats.len() == 2 && sc.stats.contains_key(a) && sc.stats.contains_key(b) =>
            {
                vec![a, b]
            }
            _ => sc.stats.keys().map(String::as_str).collect(),
        };
    let mut parts: Vec<String> = names
        .iter()
        .map(|k| format!("{k}: {}", sc.stats[*k]))
        .collect();
    if let Some(f) = sc.factor {
        parts.push(format!("factor {f}"));
    }
    if let Some(e) = sc.epsilon {
        parts.push(format!("epsilon {e}"));
    }
    if let Some([lo, hi]) = sc.clip {
        parts.push(if lo == -hi {
            format!("clip ±{hi}")
        } else {
            format!("clip [{lo}, {hi}]")
        });
    }
    if parts.is_empty() {
        sc.kind.clone()
    } else {
        format!("{} ({})", sc.kind, parts.join(", "))
    }
}

/// A checkpoint fact as docs show it: its value, or that the checkpoint does not state it.
fn stated(v: Option<impl std::fmt::Display>) -> String {
    v.map_or_else(|| crate::contract::NOT_STATED.to_owned(), |v| v.to_string())
}

/// The `production-checkpoint` block: path, format and the facts the checkpoint states.
fn production_checkpoint(s: &mut String, c: &PipelineContract) {
    let p = &c.production_checkpoint;
    s.push_str("| item | value |\n|---|---|\n");
    let _ = writeln!(s, "| path | `{}` |", p.path);
    let _ = writeln!(s, "| format | {} |", p.format.as_str());
    let _ = writeln!(s, "| input_dim | {} |", stated(p.input_dim));
    let scaler = p.scaler.as_ref().map(scaler_text);
    let _ = writeln!(s, "| scaler | {} |", stated(scaler));
    if !p.missing.is_empty() {
        let names: Vec<String> = p.missing.iter().map(|m| format!("`{m}`")).collect();
        let _ = writeln!(
            s,
            "| missing metadata | {} (docs/checkpoint-metadata.md) |",
            names.join(", ")
        );
    }
}

pub fn block(name: &str, c: &PipelineContract) -> Option<String> {
    let mut s = String::new();
    match name {
        "versions" => {
            s.push_str("| item | value |\n|---|---|\n");
            let _ = writeln!(s, "| pipeline | `{}` |", c.pipeline);
            let _ = writeln!(s, "| model version | `{}` |", c.model_version);
            let _ = writeln!(s, "| heads version | `{}` |", c.heads_version);
            let _ = writeln!(s, "| contract format | `{}` |", c.contract_format);
        }
        "features" => {
            s.push_str("| # | feature | dtype |\n|---:|---|---|\n");
            for (i, f) in c.features.columns.iter().enumerate() {
                let _ = writeln!(s, "| {i} | `{}` | {} |", f.name, f.dtype);
            }
            let _ = writeln!(
                s,
                "\n{} features · NaN policy: `{}`",
                c.features.columns.len(),
                c.features.nan_policy
            );
            // Rows need no line: the docs of a pipeline without windows stay as they were.
            if let Some(n) = c.window {
                let _ = writeln!(
                    s,
                    "\nInput window: {n} bars per symbol, ordered by timestamp"
                );
            }
        }
        "targets" => {
            s.push_str("| target | value |\n|---|---|\n");
            let _ = writeln!(s, "| horizon (bars) | {} |", c.targets.horizon);
            for (k, v) in &c.targets.thresholds {
                let _ = writeln!(
                    s,
                    "| threshold `{k}` | {} |",
                    serde_json::Number::from_f64(*v)
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| v.to_string())
                );
            }
        }
        "heads" => {
            s.push_str("| index | head | kind | shape |\n|---:|---|---|---|\n");
            for h in &c.heads {
                let shape: Vec<String> = h.shape.iter().map(u64::to_string).collect();
                let _ = writeln!(
                    s,
                    "| {} | `{}` | {} | [{}] |",
                    h.index,
                    h.name,
                    h.kind,
                    shape.join(", ")
                );
            }
        }
        "production-checkpoint" => production_checkpoint(&mut s, c),
        "hashes" => {
            s.push_str("| hash | value |\n|---|---|\n");
            let _ = writeln!(
                s,
                "| feature schema (derived) | `{}` |",
                c.features.schema_hash
            );
            let stored = c.production_checkpoint.schema_hash.as_ref();
            let _ = writeln!(
                s,
                "| feature schema (stored in checkpoint) | {} |",
                stated(stored.map(|h| format!("`{h}`")))
            );
        }
        _ => return None,
    }
    Some(s)
}
