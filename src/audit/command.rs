//! The audit commands as the command line runs them: compute, write the files, say on `err` what they
//! hold. The exit code: 0, or 1 when a row's integrated gradients did not converge (the files are
//! written and say which rows).

use std::io::Write;

use super::conditions::{self, Attribution};
use super::decisions;
use crate::check;
use crate::config;
use crate::error::{Error, Result};

/// `audit conditions`: compute, write the four files, and say what they hold. Exit 1 when a row's
/// integrated gradients did not converge within `audit.max-steps` (the files are written and say which).
pub fn conditions(
    loaded: &config::Loaded,
    dir: Option<&std::path::Path>,
    bar: &crate::progress::Bar,
    err: &mut dyn Write,
) -> Result<u8> {
    let io = |e: std::io::Error| Error::msg(format!("writing diagnostics: {e}"));
    let inputs = super::prepare(loaded)?;
    let c = conditions::compute(loaded, &inputs, &mut |done, total| {
        bar.work("integrated gradients (rows)", done, total)
    })?;
    let dir = dir.map_or_else(|| conditions::default_dir(loaded), |d| d.to_path_buf());
    conditions::write(&dir, loaded, &inputs, &c)?;
    bar.update(check::Progress::Done);
    let rows = crate::text::thousands(inputs.slice.len());
    writeln!(
        err,
        "audit conditions: {} on {} ({rows} rows)",
        inputs.checkpoint, inputs.slice_file
    )
    .map_err(io)?;
    match &c.attribution {
        Attribution::Integrated { rows: r, .. } => {
            let st = conditions::StepStats::of(r);
            writeln!(
                err,
                "  attribution  integrated gradients from the {}: {} of {rows} rows converged, {}–{} steps (median {}), largest |completeness delta| {:.2e} (tolerance {:e})",
                loaded.config.audit.baseline.name().replace('-', " "),
                crate::text::thousands(st.converged),
                st.min,
                st.max,
                st.median,
                st.max_abs_delta,
                loaded.config.audit.tolerance
            )
            .map_err(io)?;
        }
        Attribution::Permutation(_) => {
            writeln!(
                err,
                "  attribution  permutation importance, {} shuffles per feature (seed {})",
                loaded.config.audit.repeats, loaded.config.audit.seed
            )
            .map_err(io)?;
        }
    }
    let s = &c.surrogate;
    writeln!(
        err,
        "  surrogate    depth {}, {} rules: balanced accuracy {} on the holdout vs {} for always `{}` ({:+.3})",
        s.depth,
        s.rules.len(),
        super::surrogate::fixed(s.holdout_balanced_accuracy),
        super::surrogate::fixed(s.majority_balanced_accuracy),
        s.majority_class,
        s.holdout_balanced_accuracy - s.majority_balanced_accuracy
    )
    .map_err(io)?;
    writeln!(
        err,
        "  written      {}/{{{}}}",
        crate::paths::display_path(&dir),
        conditions::FILES.join(", ")
    )
    .map_err(io)?;
    if c.not_converged() > 0 {
        writeln!(
            err,
            "error: integrated gradients did not converge on {} rows within {} steps (summary.json lists them; raise `audit.max-steps` or `audit.tolerance`)",
            c.not_converged(),
            loaded.config.audit.max_steps
        )
        .map_err(io)?;
        return Ok(1);
    }
    Ok(0)
}

/// The plan's §4.1: after the post-train gates (exit code `code`), export what the new model learned —
/// when the config has what the export needs (a slice, a model this build can run). Returns the exit
/// code: with findings already failing the run they explain a failed export; a clean run that cannot
/// export is plumbline failing its job (2).
pub fn post_train(
    loaded: &config::Loaded,
    code: u8,
    bar: &crate::progress::Bar,
    err: &mut dyn Write,
) -> Result<u8> {
    let io = |e: std::io::Error| Error::msg(format!("writing diagnostics: {e}"));
    let kind = crate::engine::EngineKind::of(loaded);
    let missing = match (&loaded.config.slice, crate::engine::unavailable(kind)) {
        (None, _) => Some("no `[slice]` in the config".to_owned()),
        (_, Some(why)) => Some(why.to_owned()),
        _ => None,
    };
    if let Some(why) = missing {
        writeln!(err, "audit conditions: skipped: {why}").map_err(io)?;
        return Ok(code);
    }
    match conditions(loaded, None, bar, err) {
        Ok(c) => Ok(code.max(c)),
        Err(e) => {
            writeln!(err, "error: audit conditions: {e}").map_err(io)?;
            Ok(if code == 0 { 2 } else { code })
        }
    }
}

/// `audit decisions`: the per-decision CSV.
pub fn decisions(
    loaded: &config::Loaded,
    path: Option<&std::path::Path>,
    bar: &crate::progress::Bar,
    err: &mut dyn Write,
) -> Result<u8> {
    let io = |e: std::io::Error| Error::msg(format!("writing diagnostics: {e}"));
    let inputs = super::prepare(loaded)?;
    let f = decisions::factors(loaded, &inputs, &mut |done, total| {
        bar.work("integrated gradients (rows)", done, total)
    })?;
    let text = decisions::csv(&inputs, &f, loaded.config.audit.top_k)?;
    let path = path.map_or_else(|| decisions::default_path(loaded), |p| p.to_path_buf());
    super::write(&path, &text)?;
    bar.update(check::Progress::Done);
    writeln!(
        err,
        "audit decisions: {} decisions with their top {} factors ({}) written to {}",
        crate::text::thousands(inputs.slice.len()),
        loaded.config.audit.top_k.min(inputs.inputs.len()),
        f.method,
        crate::paths::display_path(&path)
    )
    .map_err(io)?;
    if f.not_converged > 0 {
        writeln!(
            err,
            "error: integrated gradients did not converge on {} rows within {} steps",
            f.not_converged, loaded.config.audit.max_steps
        )
        .map_err(io)?;
        return Ok(1);
    }
    Ok(0)
}
