//! `plumbline inventory` as text: a table of every checkpoint the globs find, the globals the config
//! declares safe with the files that reference them, then the findings; or the same as canonical JSON.

use crate::finding::Finding;
use crate::inventory::Row;
use crate::render::human;

/// The inventory for a terminal.
pub fn human(rows: &[Row], findings: &[Finding], safe_globals: &[String]) -> String {
    let mut s = table(rows);
    s.push_str(&declared_globals(safe_globals, rows));
    let mut sources = human::Sources::default();
    for f in findings {
        s.push('\n');
        human::finding(&mut s, f, &mut sources);
    }
    s
}

/// The inventory as canonical JSON: `checkpoints`, `findings`, `safe-globals`.
pub fn json(rows: &[Row], findings: &[Finding], safe_globals: &[String]) -> String {
    let doc = serde_json::json!({
        "checkpoints": rows,
        "findings": findings,
        "safe-globals": safe_globals,
    });
    crate::canonical::to_string(&doc).expect("plain JSON")
}

/// The globals `checkpoints.safe-globals` allows, each with the files that reference it: what the
/// built-in allowlist was widened by, in plain sight.
fn declared_globals(declared: &[String], rows: &[Row]) -> String {
    if declared.is_empty() {
        return String::new();
    }
    let mut s = String::from("\ndeclared safe globals (checkpoints.safe-globals):\n");
    let width = declared
        .iter()
        .map(|g| g.chars().count())
        .max()
        .unwrap_or(0);
    for g in declared {
        let users: Vec<&str> = rows
            .iter()
            .filter(|r| r.declared_globals.contains(g))
            .map(|r| r.path.as_str())
            .collect();
        let used = if users.is_empty() {
            "referenced by no checkpoint".to_owned()
        } else {
            format!("referenced by {}", users.join(", "))
        };
        s.push_str(&format!("  {g:<width$}  {used}\n"));
    }
    s
}

/// One row per checkpoint, columns padded to the widest cell.
fn table(rows: &[Row]) -> String {
    let header = [
        "path",
        "format",
        "size",
        "read",
        "model",
        "input_dim",
        "heads",
        "tensors",
        "sha256",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        table.push(vec![
            if r.production {
                format!("{} (production)", r.path)
            } else {
                r.path.clone()
            },
            r.format
                .map(|f| f.as_str().to_owned())
                .unwrap_or_else(|| "?".into()),
            human_size(r.size),
            r.bytes_read
                .map(human_size)
                .unwrap_or_else(|| "refused".into()),
            r.model_version.clone().unwrap_or_else(|| "—".into()),
            r.input_dim
                .map(|d| d.to_string())
                .unwrap_or_else(|| "—".into()),
            if r.heads.is_empty() {
                "—".into()
            } else {
                r.heads.join(",")
            },
            r.tensors.to_string(),
            r.sha256
                .as_deref()
                .map(|h| h.chars().take(19).collect::<String>() + "…")
                .unwrap_or_else(|| "—".into()),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for row in &table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        s.push_str(cells.join("  ").trim_end());
        s.push('\n');
    }
    s
}

fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// One checkpoint's tensors (`inventory --tensors`): name, dtype and shape per line, the names as a
/// state dict keys them (what `arch.layers` and `arch.heads` name, without `.weight`/`.bias`).
pub fn tensors(path: &str, table: &[(String, String, Vec<u64>)]) -> String {
    let width = table.iter().map(|t| t.0.len()).max().unwrap_or(0);
    let mut s = format!("\n{path}: {}\n", crate::text::plural(table.len(), "tensor"));
    for (name, dtype, shape) in table {
        let shape: Vec<String> = shape.iter().map(u64::to_string).collect();
        s.push_str(&format!(
            "  {name:<width$}  {dtype:<8}  [{}]\n",
            shape.join(", ")
        ));
    }
    s.push_str("  as `arch` entries (the trunk's under `layers`, in the order `forward` runs them, with its activations and Dropout added; each head's Linear under `heads` as {\"name\", \"layer\"}; python/plumbline_torch.py writes all of it from the module):\n");
    for entry in crate::engine::arch::layer_entries(table) {
        s.push_str(&format!("    {entry}\n"));
    }
    s
}
