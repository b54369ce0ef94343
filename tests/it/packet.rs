//! The audit packet PDF (docs/packet.md): read back with lopdf, rendered with poppler's pdftoppm, and
//! built twice to compare bytes. The example is committed to a throwaway git repository so the packet
//! has a commit to show.
#![cfg(all(feature = "pdf", feature = "native"))]

use std::path::{Path, PathBuf};

use git2::Repository;

use crate::util::{example_copy, plumbline, replace_in, stderr, stdout};

fn committed_example() -> (tempfile::TempDir, PathBuf, String) {
    let (tmp, ex) = example_copy();
    let repo = Repository::init(tmp.path()).unwrap();
    let oid = crate::base::commit_all(&repo, "release candidate");
    (tmp, ex, oid.to_string())
}

fn pre_live(ex: &Path) {
    let o = plumbline(ex, &["check", "--profile", "pre-live"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

fn packet(ex: &Path) -> Vec<u8> {
    let o = plumbline(ex, &["audit", "packet"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::read(ex.join("artifacts/audit/audit_packet.pdf")).unwrap()
}

/// Every content-stream operator of every page, in order, per page.
fn operators(doc: &lopdf::Document) -> Vec<Vec<String>> {
    doc.get_pages()
        .values()
        .map(|&id| {
            let content = doc.get_page_content(id);
            lopdf::content::Content::decode(&content)
                .unwrap()
                .operations
                .into_iter()
                .map(|op| op.operator)
                .collect()
        })
        .collect()
}

#[test]
fn the_packet_holds_the_run_and_is_byte_identical_across_runs() {
    let (_tmp, ex, commit) = committed_example();
    pre_live(&ex);
    let first = packet(&ex);
    let second = packet(&ex);
    assert!(first == second, "two packets of the same run differ");

    let doc = lopdf::Document::load_mem(&first).unwrap();
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    assert!(pages.len() >= 4, "{} pages", pages.len());
    let text = doc.extract_text(&pages).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(ex.join("artifacts/audit/run_manifest.json")).unwrap(),
    )
    .unwrap();
    for g in manifest["run"]["gates"].as_array().unwrap() {
        let name = g["gate"].as_str().unwrap();
        assert!(
            text.contains(name),
            "gate {name} is not in the packet's text"
        );
    }
    for gate in plumbline::gates::GATES {
        assert!(text.contains(gate.name), "{}", gate.name);
    }
    for needle in [
        "model v3",
        "Model version",
        commit.as_str(),
        "Verdict: passed",
        manifest["run-sha256"].as_str().unwrap(),
        manifest["created"].as_str().unwrap(),
        "ret_10",
        "THEN long",
        "PSI",
    ] {
        assert!(
            text.contains(needle),
            "`{needle}` is not in the packet's text:\n{text:.3000}"
        );
    }

    // Plots are vector paths: no image anywhere, and the chart pages fill many rectangles.
    for (_, obj) in doc.objects.iter() {
        if let Ok(s) = obj.as_stream() {
            let subtype = s.dict.get(b"Subtype").and_then(|v| v.as_name()).ok();
            assert_ne!(subtype, Some(&b"Image"[..]), "the packet holds an image");
        }
    }
    let ops = operators(&doc);
    let rects: Vec<usize> = ops
        .iter()
        .map(|p| p.iter().filter(|o| *o == "re").count())
        .collect();
    // 4 output-unit histograms × 10 bins × 2 series, 2 heads × 14 attribution bars.
    assert!(rects.iter().sum::<usize>() >= 80 + 28, "{rects:?}");
    assert!(ops.iter().flatten().any(|o| o == "l"), "no line segments");

    // poppler renders every page.
    if which("pdftoppm") {
        let out = tempfile::tempdir().unwrap();
        let pdf = out.path().join("packet.pdf");
        std::fs::write(&pdf, &first).unwrap();
        let o = std::process::Command::new("pdftoppm")
            .args(["-r", "40", "-png"])
            .arg(&pdf)
            .arg(out.path().join("page"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            o.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let pngs = std::fs::read_dir(out.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "png")
            })
            .count();
        assert_eq!(pngs, pages.len());
    }
}

/// `pdftoppm` is on PATH; with `CI` set its absence fails the test (CI installs poppler-utils).
fn which(program: &str) -> bool {
    let found = std::process::Command::new(program)
        .arg("-v")
        .output()
        .is_ok();
    assert!(
        found || std::env::var("CI").is_err(),
        "{program} is required in CI (poppler-utils)"
    );
    found
}

/// No manifest: a clear error naming the command that writes one. A manifest of another profile, one
/// edited by hand, or one older than an edit of the config or the slice: refused, nothing written.
#[test]
fn the_packet_refuses_a_missing_stale_or_edited_manifest() {
    let (_tmp, ex) = example_copy();
    let refused = |args: &[&str], why: &str| {
        let o = plumbline(&ex, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{args:?}: {}", stderr(&o));
        assert!(!ex.join("artifacts/audit/audit_packet.pdf").exists());
    };
    refused(
        &["audit", "packet"],
        "run `plumbline check --profile pre-live` first",
    );

    let o = plumbline(
        &ex,
        &["check", "--profile", "pre-backtest", "--manifest", "m.json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    refused(
        &["audit", "packet", "--manifest", "m.json"],
        "this manifest is of profile pre-backtest",
    );

    pre_live(&ex);
    let path = ex.join("artifacts/audit/run_manifest.json");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        good.replacen("\"verdict\": \"passed\"", "\"verdict\": \"failed\"", 1),
    )
    .unwrap();
    refused(
        &["audit", "packet"],
        "the manifest was edited after it was written",
    );
    std::fs::write(&path, &good).unwrap();

    let slice = ex.join("data/slice.csv");
    let original = std::fs::read(&slice).unwrap();
    std::fs::write(&slice, [original.as_slice(), b"\n"].concat()).unwrap();
    refused(&["audit", "packet"], "the manifest is stale: data file");
    std::fs::write(&slice, &original).unwrap();

    replace_in(
        &ex.join("plumbline.toml"),
        "[pipeline]",
        "# edited after the run\n[pipeline]",
    );
    refused(&["audit", "packet"], "the manifest is stale: the config");
}
