//! `audit packet` as the command line runs it: gather, render, write the PDF atomically, and say on
//! `err` what was written.

use std::io::Write;

use crate::check;
use crate::config;
use crate::error::{Error, Result};

/// `audit packet`: the PDF of a release candidate.
pub fn write(
    loaded: &config::Loaded,
    path: Option<&std::path::Path>,
    manifest: Option<&std::path::Path>,
    bar: &crate::progress::Bar,
    err: &mut dyn Write,
) -> Result<u8> {
    let io = |e: std::io::Error| Error::msg(format!("writing diagnostics: {e}"));
    if !cfg!(feature = "pdf") {
        return Err(Error::msg(
            "`audit packet` needs the `pdf` feature, and this build has none (rebuild with default features, or `--features pdf`)",
        ));
    }
    let manifest = manifest.map_or_else(
        || crate::manifest::default_path(loaded),
        |p| p.to_path_buf(),
    );
    let p = crate::packet::gather(loaded, &manifest, &mut |done, total| {
        bar.work("integrated gradients (rows)", done, total)
    })?;
    let bytes = render(&p)?;
    let path = path.map_or_else(|| crate::packet::default_path(loaded), |p| p.to_path_buf());
    crate::paths::atomic_write_creating(&path, &bytes)?;
    bar.update(check::Progress::Done);
    writeln!(
        err,
        "audit packet: {} ({} bytes) for run {} ({}, {})",
        crate::paths::display_path(&path),
        crate::text::thousands(bytes.len()),
        p.manifest.run_sha256,
        p.manifest.run.verdict,
        p.manifest.created
    )
    .map_err(io)?;
    Ok(0)
}

#[cfg(feature = "pdf")]
fn render(p: &crate::packet::Packet) -> Result<Vec<u8>> {
    super::render::pdf(p)
}

#[cfg(not(feature = "pdf"))]
fn render(_: &crate::packet::Packet) -> Result<Vec<u8>> {
    unreachable!("checked above")
}
