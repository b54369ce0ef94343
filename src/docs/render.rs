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
        "production-checkpoint" => {
            let p = &c.production_checkpoint;
            s.push_str("| item | value |\n|---|---|\n");
            let _ = writeln!(s, "| path | `{}` |", p.path);
            let _ = writeln!(s, "| format | {} |", p.format.as_str());
            let _ = writeln!(s, "| input_dim | {} |", p.input_dim);
            let _ = writeln!(
                s,
                "| scaler | {} (median: {}, MAD: {}) |",
                p.scaler.kind, p.scaler.median_len, p.scaler.mad_len
            );
        }
        "hashes" => {
            s.push_str("| hash | value |\n|---|---|\n");
            let _ = writeln!(
                s,
                "| feature schema (derived) | `{}` |",
                c.features.schema_hash
            );
            let _ = writeln!(
                s,
                "| feature schema (stored in checkpoint) | `{}` |",
                c.production_checkpoint.schema_hash
            );
        }
        _ => return None,
    }
    Some(s)
}
