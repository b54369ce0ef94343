//! The command protocol with bad and good user commands: a builder that crashes, hangs, writes no
//! file, or writes a malformed CSV or Parquet table is a finding naming the command (with its stderr),
//! never a pass; a builder that writes Parquet is read, dtypes included. The example's builders share no
//! code (their imports, parsed).

use std::path::{Path, PathBuf};

use crate::util::{example_copy, plumbline, replace_in, repo, stderr, stdout};

const LIVE: &str = r#"live = { argv = ["python3", "live/features.py", "{prices}", "{out}"], columns = { python = "live/features.py", name = "COLUMNS" } }"#;

/// The example on the tiny price file, with the live builder replaced by `live` (a TOML inline table).
fn with_live(live: &str) -> (tempfile::TempDir, PathBuf) {
    with_live_edges(live, true)
}

/// [`with_live`]; `edges = false` turns off the edge symbols and bad bars, for a fake builder that
/// writes a fixed table whatever prices it gets.
fn with_live_edges(live: &str, edges: bool) -> (tempfile::TempDir, PathBuf) {
    let (g, ex) = example_copy();
    std::fs::copy(
        repo().join("tests/fixtures/tables/prices_tiny.csv"),
        ex.join("data/tiny.csv"),
    )
    .unwrap();
    let cfg = ex.join("plumbline.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(LIVE));
    let text = text
        .replace(
            "prices = \"data/prices_recent.csv\"",
            "prices = \"data/tiny.csv\"",
        )
        .replace(LIVE, live);
    let text = if edges {
        text
    } else {
        text + "\n[gates.feature-parity]\nedge-symbols = false\n"
    };
    std::fs::write(&cfg, text).unwrap();
    (g, ex)
}

fn python(code: &str, timeout: Option<u64>) -> String {
    let t = timeout.map_or(String::new(), |s| format!(", timeout-secs = {s}"));
    format!(
        "live = {{ argv = [\"python3\", \"-c\", {}, \"{{prices}}\", \"{{out}}\"]{t} }}",
        serde_json::to_string(code).unwrap()
    )
}

fn parity(ex: &Path) -> (Option<i32>, String) {
    let o = plumbline(ex, &["gate", "feature-parity"]);
    (o.status.code(), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn a_crashing_builder_is_a_finding_with_its_stderr() {
    let (_g, ex) = with_live(&python(
        "import sys; sys.stderr.write('boom: cannot read prices\\n'); sys.exit(3)",
        None,
    ));
    let (code, out) = parity(&ex);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("error[builder-failed]: the live builder `python3 -c"),
        "{out}"
    );
    assert!(
        out.contains("exited with exit status: 3; stderr:\nboom: cannot read prices"),
        "{out}"
    );
}

/// A builder that writes into the prices it was given (a swapped `argv` index) is a finding, even when it
/// also writes its `{out}`: the next command would read the damaged file.
#[test]
fn a_builder_that_changes_its_input_is_a_finding() {
    let (_g, ex) = with_live(&python(
        "import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2]); open(sys.argv[1], 'a').write('')\nimport os; os.utime(sys.argv[1], (0, 0))",
        None,
    ));
    let (code, out) = parity(&ex);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "it changed `{prices}`, a file it was given to read; a command writes only `{out}`"
        ),
        "{out}"
    );
}

#[test]
fn a_hanging_builder_is_killed_at_its_timeout() {
    let (_g, ex) = with_live(&python("import time; time.sleep(60)", Some(1)));
    let t = std::time::Instant::now();
    let (code, out) = parity(&ex);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("timed out after 1 s (killed)"), "{out}");
    assert!(t.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn a_builder_that_writes_nothing_or_garbage_is_a_finding() {
    let (_g, ex) = with_live(&python("pass", None));
    let (code, out) = parity(&ex);
    assert_eq!(code, Some(1));
    assert!(out.contains("exited 0 but wrote no `{out}` file"), "{out}");

    let (_g, ex) = with_live(&python(
        "import sys; open(sys.argv[2], 'w').write('timestamp,symbol,x\\n1,AAA,1,2\\n')",
        None,
    ));
    let (code, out) = parity(&ex);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("wrote a table plumbline cannot read") && out.contains("malformed CSV"),
        "{out}"
    );

    let (_g, ex) = with_live(&python(
        "import sys; open(sys.argv[2], 'wb').write(b'PAR1 not really PAR1')",
        None,
    ));
    let (code, out) = parity(&ex);
    assert_eq!(code, Some(1));
    #[cfg(feature = "parquet")]
    assert!(out.contains("malformed Parquet"), "{out}");
    #[cfg(not(feature = "parquet"))]
    assert!(
        out.contains("a Parquet table, and this build has no `parquet` feature"),
        "{out}"
    );
}

#[test]
fn an_unknown_placeholder_is_a_config_error() {
    let (_g, ex) =
        with_live(r#"live = { argv = ["python3", "live/features.py", "{pricez}", "{out}"] }"#);
    let (code, out) = parity(&ex);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("builders.live: unknown placeholder `{pricez}`"),
        "{out}"
    );
}

#[cfg(feature = "parquet")]
#[test]
fn a_builder_writing_parquet_is_compared_dtypes_included() {
    let copy = |file: &str| {
        let src = repo().join("tests/fixtures/tables").join(file);
        format!(
            "live = {{ argv = [\"python3\", \"-c\", \"import shutil, sys; shutil.copy(sys.argv[1], sys.argv[3])\", {:?}, \"{{prices}}\", \"{{out}}\"] }}",
            src.to_string_lossy()
        )
    };
    let (_g, ex) = with_live_edges(&copy("features_tiny.parquet"), false);
    let (code, out) = parity(&ex);
    assert_eq!(
        code,
        Some(0),
        "float64 Parquet with the training builder's values: {out}"
    );
    let (_g, ex) = with_live_edges(&copy("features_tiny_float32.parquet"), false);
    let (code, out) = parity(&ex);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "error[feature-value-mismatch]: `ret_5` differs between the live and training builders"
        ),
        "{out}"
    );
    assert!(out.contains("it computes or stores in float32"), "{out}");
}

/// The module names a Python file imports (`import a.b`, `from a.b import c`), parsed.
fn imports(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .unwrap();
    let tree = parser.parse(&text, None).unwrap();
    let mut out = Vec::new();
    let mut stack = vec![tree.root_node()];
    while let Some(n) = stack.pop() {
        match n.kind() {
            "import_statement" => {
                let mut c = n.walk();
                for name in n.children_by_field_name("name", &mut c) {
                    let name = if name.kind() == "aliased_import" {
                        name.child_by_field_name("name").unwrap()
                    } else {
                        name
                    };
                    out.push(text[name.byte_range()].to_owned());
                }
            }
            "import_from_statement" => {
                let m = n.child_by_field_name("module_name").unwrap();
                out.push(text[m.byte_range()].to_owned());
            }
            _ => {
                let mut c = n.walk();
                stack.extend(n.children(&mut c));
            }
        }
    }
    out
}

#[test]
fn the_three_builders_share_no_code() {
    let ex = repo().join("examples/momentum");
    let training = [
        imports(&ex.join("pipeline/build_training.py")),
        imports(&ex.join("pipeline/features.py")),
    ]
    .concat();
    let backtest = imports(&ex.join("backtest/features.py"));
    let live = imports(&ex.join("live/features.py"));
    let local = |m: &str| {
        [
            "pipeline", "backtest", "live", "features", "labels", "model", ".",
        ]
        .iter()
        .any(|p| m == *p || m.starts_with(&format!("{p}.")) || m.starts_with('.'))
    };
    for (name, mods) in [("backtest", &backtest), ("live", &live)] {
        let shared: Vec<&String> = mods.iter().filter(|m| local(m)).collect();
        assert!(
            shared.is_empty(),
            "the {name} builder imports local code: {shared:?}"
        );
    }
    // The training builder imports its own module only.
    let shared: Vec<&String> = training
        .iter()
        .filter(|m| local(m) && *m != "pipeline.features")
        .collect();
    assert!(shared.is_empty(), "the training builder imports {shared:?}");
    assert!(
        training.iter().any(|m| m == "pipeline.features"),
        "{training:?}"
    );
    // Sanity: the parser sees the imports that are there.
    assert!(backtest.iter().any(|m| m == "csv"), "{backtest:?}");
}

/// The command engine runs the model through the user's own entry point: forward-contract and
/// output-distribution pass on it as on the native engine (the same weights in float64), and a command
/// engine that crashes is a finding, not a pass. Works without the `native` feature.
#[test]
fn the_command_engine_runs_the_model_gates() {
    let (_g, ex) = example_copy();
    crate::util::use_command_engine(&ex);
    let cfg = ex.join("plumbline.toml");
    for gate in ["forward-contract", "output-distribution"] {
        let o = plumbline(&ex, &["gate", gate]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{gate}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
    let o = plumbline(&ex, &["gate", "forward-contract"]);
    assert!(stdout(&o).contains("reference 64 rows Δ"), "{}", stdout(&o));

    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "\"backtest/infer.py\", \"checkpoints",
        "\"no/such/infer.py\", \"checkpoints",
    );
    std::fs::write(&cfg, text).unwrap();
    let o = plumbline(&ex, &["gate", "forward-contract"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("error[forward-model-unavailable]: the command engine `python3"),
        "{}",
        stdout(&o)
    );
}

/// The training-time anchor fails closed: a `[data] anchor` that shares no row with the builders past
/// their warm-up, or lacks a feature column, is `feature-anchor-unusable`; the example's slice anchors
/// every builder on all of its rows.
#[test]
fn an_anchor_that_anchors_nothing_is_a_finding() {
    let (_guard, ex) = example_copy();
    let (code, out) = parity(&ex);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("anchored on 2115 slice rows"), "{out}");

    // The slice's rows moved to timestamps the prices do not have.
    let slice = std::fs::read_to_string(ex.join("data/slice.csv")).unwrap();
    let moved: String = slice
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{l}\n")
            } else {
                format!("9{l}\n")
            }
        })
        .collect();
    std::fs::write(ex.join("data/frozen.csv"), moved).unwrap();
    replace_in(
        &ex.join("plumbline.toml"),
        "prices = \"data/prices_recent.csv\"",
        "prices = \"data/prices_recent.csv\"\nanchor = \"data/frozen.csv\"",
    );
    let (code, out) = parity(&ex);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        out.matches("error[feature-anchor-unusable]").count(),
        3,
        "{out}"
    );
    assert!(
        out.contains("the training builder shares no row with the training-time features (data/frozen.csv) past its warm-up"),
        "{out}"
    );

    // A feature column missing from the anchor.
    let dropped: String = slice
        .lines()
        .map(|l| format!("{}\n", l.rsplit_once(',').unwrap().0))
        .collect();
    std::fs::write(ex.join("data/frozen.csv"), dropped).unwrap();
    let (code, out) = parity(&ex);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("error[feature-anchor-unusable]: the training-time features data/frozen.csv have no numeric column for mom_5_20"),
        "{out}"
    );
    assert!(out.contains("--> data/frozen.csv:1"), "{out}");
}

/// A builder that floods stderr: the finding keeps its first and last 8 KiB and says how much went
/// (the middle is dropped while it is read, so memory stays flat too).
#[test]
fn a_flood_on_stderr_is_capped_in_the_finding() {
    let (_g, ex) = with_live(&python(
        "import sys\nsys.stderr.write('first line\\n')\nsys.stderr.write('x' * 64_000_000)\nsys.stderr.write('\\nlast line\\n')\nsys.exit(3)",
        None,
    ));
    let o = plumbline(&ex, &["--format", "json", "gate", "feature-parity"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        o.stdout.len() < 100_000,
        "{} bytes of report",
        o.stdout.len()
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "builder-failed")
        .expect("builder-failed");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("stderr:\nfirst line\nxxx"),
        "{}",
        &message[..200]
    );
    assert!(
        message.contains("[… 63,983,638 bytes of stderr dropped …]"),
        "{message:.300}"
    );
    assert!(
        message.ends_with("xxx\nlast line"),
        "{}",
        &message[message.len() - 100..]
    );
}
