//! Models beyond the first-format MLP: every layer type of the `arch` layer list against PyTorch, and the
//! BatchNorm + LeakyReLU model trained on the momentum data (tests/fixtures/models/momentum_bn) with
//! its defect variants, each caught by name.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{example_copy, fixture, plumbline, replace_in, stderr, stdout};

fn bn_fixture(file: &str) -> PathBuf {
    fixture(&format!("models/momentum_bn/{file}"))
}

/// The momentum example with the BN + LeakyReLU model as its production checkpoint (a bare state dict
/// with its JSON sidecar) and its PyTorch reference. `edit` changes the sidecar's `arch`.
fn bn_example(edit: impl FnOnce(&mut Value)) -> (tempfile::TempDir, PathBuf) {
    let (d, ex) = example_copy();
    // The example's own checkpoints claim the same model version: keep the production one alone.
    for f in ["momentum_v3.pt", "momentum_v3.safetensors"] {
        std::fs::remove_file(ex.join("checkpoints").join(f)).unwrap();
    }
    std::fs::copy(
        bn_fixture("momentum_bn.pt"),
        ex.join("checkpoints/momentum_bn.pt"),
    )
    .unwrap();
    let mut sidecar: Value =
        serde_json::from_str(&std::fs::read_to_string(bn_fixture("momentum_bn.json")).unwrap())
            .unwrap();
    edit(&mut sidecar["arch"]);
    std::fs::write(
        ex.join("checkpoints/momentum_bn.json"),
        serde_json::to_string_pretty(&sidecar).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        bn_fixture("outputs.json"),
        ex.join("reference/bn_outputs.json"),
    )
    .unwrap();
    let cfg = ex.join("plumbline.toml");
    replace_in(
        &cfg,
        "globs = [\"checkpoints/*.pt\", \"checkpoints/*.safetensors\"]",
        "globs = [\"checkpoints/*.pt\"]",
    );
    replace_in(
        &cfg,
        "production = \"checkpoints/momentum_v3.pt\"",
        "production = \"checkpoints/momentum_bn.pt\"",
    );
    replace_in(
        &cfg,
        "reference = \"reference/outputs.json\"",
        "reference = \"reference/bn_outputs.json\"",
    );
    (d, ex)
}

fn gate(ex: &Path, name: &str) -> (Option<i32>, String) {
    let out = plumbline(ex, &["gate", name]);
    (
        out.status.code(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

/// Run `name`, which must fail with findings (exit 1); its output.
fn fails(ex: &Path, name: &str) -> String {
    let (code, said) = gate(ex, name);
    assert_eq!(code, Some(1), "{name}: {said}");
    said
}

/// Run `name`, which must pass (exit 0); its output.
fn passes(ex: &Path, name: &str) -> String {
    let (code, said) = gate(ex, name);
    assert_eq!(code, Some(0), "{name}: {said}");
    said
}

#[test]
fn the_batchnorm_leaky_relu_model_passes_forward_contract_natively() {
    if !cfg!(feature = "native") {
        return;
    }
    let (_d, ex) = bn_example(|_| {});
    let said = passes(&ex, "forward-contract");
    assert!(said.contains("reference 64 rows Δ"), "{said}");
    // Every tensor of the state dict is a parameter of `arch`, BatchNorm running statistics included.
    passes(&ex, "checkpoint-inventory");
}

#[test]
fn a_batchnorm_left_out_is_named_by_the_inventory_and_by_the_reference() {
    let (_d, ex) = bn_example(|arch| {
        arch["layers"].as_array_mut().unwrap().remove(1);
    });
    let said = fails(&ex, "checkpoint-inventory");
    assert!(
        said.contains("error[arch-tensor-unused]: checkpoints/momentum_bn.pt: module `net.1` (`net.1.bias`, `net.1.num_batches_tracked`, `net.1.running_mean`, `net.1.running_var`, `net.1.weight`)"),
        "{said}"
    );
    if cfg!(feature = "native") {
        let said = fails(&ex, "forward-contract");
        assert!(
            said.contains("error[forward-arch-differs]: the checkpoint's `arch` is not the model the reference outputs came from: `arch` leaves out the model's layers.1: `net.1` BatchNorm1d(32, eps=1e-5, affine=True)"),
            "{said}"
        );
        assert!(said.contains("error[forward-reference-mismatch]"), "{said}");
    }
}

#[test]
fn a_wrong_leaky_relu_slope_is_named_at_its_sidecar_line() {
    if !cfg!(feature = "native") {
        return;
    }
    let (_d, ex) = bn_example(|arch| arch["layers"][6]["negative_slope"] = 0.2.into());
    // The tensors cannot show a slope: the inventory passes.
    passes(&ex, "checkpoint-inventory");
    let said = fails(&ex, "forward-contract");
    assert!(
        said.contains("layers.6: `arch` has LeakyReLU(negative_slope=0.2), the model has LeakyReLU(negative_slope=0.1) (its layers.6)"),
        "{said}"
    );
    assert!(
        said.contains("--> checkpoints/momentum_bn.json:")
            && said.contains("(sidecar key `arch.layers.6`)"),
        "{said}"
    );
    assert!(said.contains("error[forward-reference-mismatch]"), "{said}");
}

#[test]
fn relu_written_for_leaky_relu_is_named() {
    if !cfg!(feature = "native") {
        return;
    }
    let (_d, ex) = bn_example(|arch| {
        arch["layers"][2] = serde_json::json!({"type": "ReLU"});
    });
    let said = fails(&ex, "forward-contract");
    assert!(
        said.contains(
            "layers.2: `arch` has ReLU, the model has LeakyReLU(negative_slope=0.1) (its layers.2)"
        ),
        "{said}"
    );
}

#[test]
fn without_a_recorded_arch_the_outputs_still_catch_a_wrong_slope() {
    if !cfg!(feature = "native") {
        return;
    }
    let (_d, ex) = bn_example(|arch| arch["layers"][2]["negative_slope"] = 0.01.into());
    let reference = ex.join("reference/bn_outputs.json");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&reference).unwrap()).unwrap();
    doc.as_object_mut().unwrap().remove("arch");
    std::fs::write(&reference, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let said = fails(&ex, "forward-contract");
    assert!(
        said.contains("error[forward-reference-mismatch]: row 0"),
        "{said}"
    );
    assert!(!said.contains("forward-arch-differs"), "{said}");
}

#[test]
fn a_reference_from_other_weights_is_stale() {
    if !cfg!(feature = "native") {
        return;
    }
    let (_d, ex) = bn_example(|_| {});
    let reference = ex.join("reference/bn_outputs.json");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&reference).unwrap()).unwrap();
    // What python/plumbline_torch.py computed from the module is what plumbline reads from the file.
    let torch_hash = doc["weights_sha256"].as_str().unwrap().to_owned();
    passes(&ex, "forward-contract");
    let other = format!("sha256:{}", "0".repeat(64));
    doc["weights_sha256"] = other.clone().into();
    std::fs::write(&reference, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let said = fails(&ex, "forward-contract");
    assert!(
        said.contains(&format!("error[forward-reference-stale]: the reference outputs were written from weights {other}; the production checkpoint's are {torch_hash}")),
        "{said}"
    );
    // A reference that states no hash is tied to nothing.
    doc.as_object_mut().unwrap().remove("weights_sha256");
    std::fs::write(&reference, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let said = fails(&ex, "forward-contract");
    assert!(
        said.contains("the reference outputs state no `weights_sha256`"),
        "{said}"
    );
}

#[test]
fn pre_live_requires_a_reference_for_the_native_engine() {
    if !cfg!(feature = "native") {
        return;
    }
    let (_d, ex) = bn_example(|_| {});
    replace_in(
        &ex.join("plumbline.toml"),
        "reference = \"reference/bn_outputs.json\"",
        "",
    );
    // A plain gate run says there is none; the pre-live profile refuses it.
    let said = passes(&ex, "forward-contract");
    assert!(said.contains("no reference"), "{said}");
    let out = plumbline(&ex, &["check", "--profile", "pre-live", "--format", "json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"forward-reference-missing"), "{codes:?}");
}

/// Each network of tests/fixtures/models/layers (every layer type and argument of the `arch` layer
/// list, written by PyTorch with `python/plumbline_torch.py`) gives PyTorch's outputs within 1e-5.
#[test]
#[cfg(feature = "native")]
fn every_layer_type_matches_pytorch() {
    use plumbline::config::CheckpointKeys;
    use plumbline::engine::{self, EngineKind};
    use plumbline::matrix::Matrix;

    let dir = fixture("models/layers");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            continue;
        }
        seen += 1;
        let info = plumbline::checkpoint::open(&path).unwrap();
        let engine = engine::load(EngineKind::Native, &info, &CheckpointKeys::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reference: Value =
            serde_json::from_str(&std::fs::read_to_string(path.with_extension("json")).unwrap())
                .unwrap();
        let rows = reference["rows"].as_array().unwrap();
        let scaled: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| crate::util::numbers(&r["scaled"]))
            .collect();
        let out = engine
            .forward(&Matrix::from_rows(engine.input_dim(), &scaled))
            .unwrap();
        // The weights' hash read from the safetensors file is the one torch computed from the module.
        assert_eq!(
            engine.weights_sha256().unwrap().unwrap(),
            reference["weights_sha256"].as_str().unwrap(),
            "{}",
            path.display()
        );
        for (i, r) in rows.iter().enumerate() {
            for (head, want) in r["outputs"].as_object().unwrap() {
                for (g, w) in out[head].row(i).iter().zip(crate::util::numbers(want)) {
                    assert!(
                        (g - w).abs() <= 1e-5,
                        "{} row {i} head {head}: burn {g}, torch {w}",
                        path.display()
                    );
                }
            }
        }
        // Gradients (integrated gradients' input) through every layer type, eval mode: torch autograd's.
        let grads = reference["gradients"].as_object().unwrap();
        for (head, units) in grads {
            for (u, want) in units.as_array().unwrap().iter().enumerate() {
                let want = want.as_array().unwrap();
                let x = Matrix::from_rows(engine.input_dim(), &scaled[..want.len()]);
                let got = engine.gradients(&x, head, u).unwrap().unwrap();
                for (r, w) in want.iter().enumerate() {
                    for (g, w) in got.row(r).iter().zip(crate::util::numbers(w)) {
                        assert!(
                            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                            "{} gradient of {head}[{u}] row {r}: burn {g}, torch {w}",
                            path.display()
                        );
                    }
                }
            }
        }
    }
    assert_eq!(seen, 8);
}

/// The input window is a fact of the contract: declared by the code, stated by the checkpoint (here
/// a sidecar), written in the docs, and compared between them; an engine never runs a window model on
/// rows.
#[test]
fn the_window_is_compared_code_checkpoint_and_docs() {
    let (_d, ex) = example_copy();
    let model_py = ex.join("pipeline/model.py");
    let mut text = std::fs::read_to_string(&model_py).unwrap();
    text.push_str("\nWINDOW = 16  # bars per symbol the model sees\n");
    std::fs::write(&model_py, text).unwrap();
    replace_in(
        &ex.join("plumbline.toml"),
        "heads = { python = \"pipeline/model.py\", name = \"HEADS\" }",
        "heads = { python = \"pipeline/model.py\", name = \"HEADS\" }\nwindow = { python = \"pipeline/model.py\", name = \"WINDOW\" }",
    );
    // The checkpoint does not state a window: a missing fact; the docs do not show one: drift.
    let said = fails(&ex, "feature-schema");
    assert!(
        said.contains("error[checkpoint-missing-fact]") && said.contains("`window`"),
        "{said}"
    );
    let said = fails(&ex, "docs-drift");
    assert!(said.contains("+Input window: 16 bars per symbol"), "{said}");
    // A model whose `arch` takes rows is never fed the code's windows.
    if cfg!(feature = "native") {
        let said = fails(&ex, "forward-contract");
        assert!(
            said.contains("the code declares windows of 16 bars (`[model] window`), but the production checkpoint's `arch` takes rows"),
            "{said}"
        );
    }
    // A checkpoint trained on another window, stated beside it.
    std::fs::write(
        ex.join("checkpoints/momentum_v3.json"),
        "{\n  \"window\": 32\n}\n",
    )
    .unwrap();
    let (_, said) = gate(&ex, "feature-schema");
    assert!(
        said.contains("error[window-mismatch]: the checkpoint was trained on windows of 32 bars, the code declares windows of 16 bars"),
        "{said}"
    );
    assert!(
        said.contains("--> checkpoints/momentum_v3.json:2"),
        "{said}"
    );
    assert!(said.contains("pipeline/model.py:"), "{said}");
    // The code declares rows (no `[model] window`), the checkpoint a window.
    replace_in(
        &ex.join("plumbline.toml"),
        "\nwindow = { python = \"pipeline/model.py\", name = \"WINDOW\" }",
        "",
    );
    let said = fails(&ex, "feature-schema");
    assert!(
        said.contains("error[window-mismatch]: the checkpoint was trained on windows of 32 bars, the code declares rows"),
        "{said}"
    );
}

/// With the command engine, an `arch` in the team's own format is metadata: the inventory does not
/// report it, so forward-contract reports why the model was not built itself (nothing goes unsaid).
#[test]
fn with_the_command_engine_a_failed_model_is_reported_whatever_the_arch() {
    let (_d, ex) = example_copy();
    crate::util::use_command_engine(&ex);
    let cfg = ex.join("plumbline.toml");
    // `arch` read from a key that is no architecture, and a window the engines refuse.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[checkpoints.keys]\narch = \"heads\"\n");
    std::fs::write(&cfg, text).unwrap();
    let model_py = ex.join("pipeline/model.py");
    let mut py = std::fs::read_to_string(&model_py).unwrap();
    py.push_str("\nWINDOW = 8\n");
    std::fs::write(&model_py, py).unwrap();
    replace_in(
        &cfg,
        "heads = { python = \"pipeline/model.py\", name = \"HEADS\" }\n",
        "heads = { python = \"pipeline/model.py\", name = \"HEADS\" }\nwindow = { python = \"pipeline/model.py\", name = \"WINDOW\" }\n",
    );
    let out = plumbline(&ex, &["check", "--format", "json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"forward-model-unavailable"), "{codes:?}");
    assert!(!codes.contains(&"arch-invalid"), "{codes:?}");
}

/// Integrated gradients through BatchNorm and LeakyReLU: every row converges, completeness within the
/// tolerance (the gradients themselves are checked against torch in `every_layer_type_matches_pytorch`).
#[test]
#[cfg(feature = "native")]
fn integrated_gradients_run_through_batchnorm_and_leaky_relu() {
    let (_d, ex) = bn_example(|_| {});
    crate::util::cut_slice(&ex, 150);
    let out = plumbline(&ex, &["audit", "conditions"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(ex.join("artifacts/learned_conditions/summary.json")).unwrap(),
    )
    .unwrap();
    let ig = &summary["integrated_gradients"];
    assert_eq!(ig["rows_not_converged"], 0, "{ig:.200}");
    assert_eq!(ig["rows"].as_array().unwrap().len(), 150);
    assert!(ig["max_abs_completeness_delta"].as_f64().unwrap() <= 1e-5);
}

fn win_fixture(file: &str) -> PathBuf {
    fixture(&format!("models/momentum_win/{file}"))
}

/// The momentum example with the model over windows of 8 bars as its production checkpoint (a bare
/// state dict with its JSON sidecar, `window: 8`), the code declaring `WINDOW = 8`, and its PyTorch
/// reference. `edit` changes the sidecar.
fn win_example(edit: impl FnOnce(&mut Value)) -> (tempfile::TempDir, PathBuf) {
    windowed_example(
        "momentum_win",
        [
            win_fixture("momentum_win.pt"),
            win_fixture("momentum_win.json"),
            win_fixture("outputs.json"),
        ],
        8,
        edit,
    )
}

/// The momentum example with a model over windows as its production checkpoint
/// `checkpoints/<name>.pt` (`files`: the bare state dict, its JSON sidecar, then the PyTorch reference),
/// the code declaring `WINDOW = window`. `edit` changes the sidecar.
fn windowed_example(
    name: &str,
    files: [PathBuf; 3],
    window: u64,
    edit: impl FnOnce(&mut Value),
) -> (tempfile::TempDir, PathBuf) {
    let (d, ex) = example_copy();
    for f in ["momentum_v3.pt", "momentum_v3.safetensors"] {
        std::fs::remove_file(ex.join("checkpoints").join(f)).unwrap();
    }
    let [checkpoint, sidecar_file, reference] = files;
    std::fs::copy(checkpoint, ex.join(format!("checkpoints/{name}.pt"))).unwrap();
    let mut sidecar: Value =
        serde_json::from_str(&std::fs::read_to_string(sidecar_file).unwrap()).unwrap();
    edit(&mut sidecar);
    std::fs::write(
        ex.join(format!("checkpoints/{name}.json")),
        serde_json::to_string_pretty(&sidecar).unwrap(),
    )
    .unwrap();
    std::fs::copy(reference, ex.join(format!("reference/{name}_outputs.json"))).unwrap();
    let model_py = ex.join("pipeline/model.py");
    let mut py = std::fs::read_to_string(&model_py).unwrap();
    py.push_str(&format!(
        "\nWINDOW = {window}  # bars per symbol the model sees\n"
    ));
    std::fs::write(&model_py, py).unwrap();
    let cfg = ex.join("plumbline.toml");
    for (from, to) in [
        (
            "globs = [\"checkpoints/*.pt\", \"checkpoints/*.safetensors\"]".to_owned(),
            "globs = [\"checkpoints/*.pt\"]".to_owned(),
        ),
        (
            "production = \"checkpoints/momentum_v3.pt\"".to_owned(),
            format!("production = \"checkpoints/{name}.pt\""),
        ),
        (
            "reference = \"reference/outputs.json\"".to_owned(),
            format!("reference = \"reference/{name}_outputs.json\""),
        ),
        (
            "heads = { python = \"pipeline/model.py\", name = \"HEADS\" }\n".to_owned(),
            "heads = { python = \"pipeline/model.py\", name = \"HEADS\" }\nwindow = { python = \"pipeline/model.py\", name = \"WINDOW\" }\n".to_owned(),
        ),
    ] {
        replace_in(&cfg, &from, &to);
    }
    (d, ex)
}

/// PyTorch's outputs on every window of the example's slice, by (timestamp, symbol) of its last bar.
#[cfg(feature = "native")]
fn pytorch_slice_outputs() -> std::collections::BTreeMap<(String, String), Vec<f64>> {
    let text = std::fs::read_to_string(win_fixture("slice_outputs.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            let values = cells[2..].iter().map(|v| v.parse().unwrap()).collect();
            ((cells[0].to_owned(), cells[1].to_owned()), values)
        })
        .collect()
}

/// The window model passes forward-contract natively against PyTorch, and the windows plumbline builds
/// from the slice (grouped by symbol, in time order, never across a gap) give PyTorch's outputs on the
/// windows the training script built from the same file.
#[test]
#[cfg(feature = "native")]
fn a_window_model_runs_natively_on_the_windows_plumbline_builds() {
    let (_d, ex) = win_example(|_| {});
    let said = passes(&ex, "forward-contract");
    assert!(said.contains("reference 64 rows"), "{said}");
    // 20 bars per symbol; BBB loses its 11th bar: a gap no window may cross.
    crate::util::cut_slice(&ex, 60);
    let slice = ex.join("data/slice.csv");
    let text = std::fs::read_to_string(&slice).unwrap();
    let gap = text.lines().nth(1 + 3 * 10 + 1).unwrap().to_owned();
    assert!(gap.contains(",BBB,"), "{gap}");
    std::fs::write(&slice, text.replace(&format!("{gap}\n"), "")).unwrap();
    let out = plumbline(&ex, &["audit", "decisions"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let csv = std::fs::read_to_string(ex.join("artifacts/audit/decision_attribution.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert!(header.contains(&"scaled.ret_1[t-7]") && header.contains(&"scaled.mom_5_20[t]"));
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let heads = ["direction.0", "direction.1", "direction.2", "magnitude.0"].map(col);
    let torch = pytorch_slice_outputs();
    let mut per_symbol = std::collections::BTreeMap::<String, usize>::new();
    for line in csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let key = (cells[0].to_owned(), cells[1].to_owned());
        *per_symbol.entry(key.1.clone()).or_default() += 1;
        let want = &torch[&key];
        for (k, &c) in heads.iter().enumerate() {
            let got: f64 = cells[c].parse().unwrap();
            assert!(
                (got - want[k]).abs() <= 1e-5,
                "{key:?} {}: {got} vs torch {}",
                header[c],
                want[k]
            );
        }
    }
    // 20 bars give 13 windows; BBB's 10 + 9 unbroken bars give 3 + 2.
    let counts: Vec<(&str, usize)> = per_symbol.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    assert_eq!(counts, [("AAA", 13), ("BBB", 5), ("CCC", 13)]);
    // Integrated gradients on windows: per feature and lag, complete.
    let out = plumbline(&ex, &["audit", "conditions"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dir = ex.join("artifacts/learned_conditions");
    let attribution = std::fs::read_to_string(dir.join("attribution.csv")).unwrap();
    assert!(attribution.contains(",ret_1[t-7],") && attribution.contains(",vz_20[t],"));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let ig = &summary["integrated_gradients"];
    assert_eq!(ig["rows_not_converged"], 0, "{ig:.200}");
    assert!(ig["max_abs_completeness_delta"].as_f64().unwrap() <= 1e-5);
}

/// A window of the wrong length is caught by name: in the checkpoint's own `arch` (the first flat
/// layer cannot take it) and against the code.
#[test]
#[cfg(feature = "native")]
fn a_window_of_the_wrong_length_is_caught_by_name() {
    let (_d, ex) = win_example(|s| {
        s["window"] = 16.into();
        s["arch"]["window"] = 16.into();
    });
    let said = fails(&ex, "checkpoint-inventory");
    assert!(
        said.contains("error[arch-invalid]")
            && said.contains("`arch.layers.3.in_features` is 64, but the Flatten (layers.2) gives 16 bars × 8 = 128"),
        "{said}"
    );
    assert!(said.contains("checkpoints/momentum_win.json:"), "{said}");
    let said = fails(&ex, "feature-schema");
    assert!(
        said.contains("error[window-mismatch]: the checkpoint was trained on windows of 16 bars, the code declares windows of 8 bars"),
        "{said}"
    );
}

/// The command engine gets windows in the protocol's long form (`row`, `lag`, the features; each
/// window's bars oldest first): a numpy engine that checks the layout strictly matches PyTorch.
#[test]
fn the_command_engine_gets_windows_in_long_form() {
    let (_d, ex) = win_example(|_| {});
    let engine = format!(
        "engine = {{ argv = [\"python3\", {:?}, {:?}, \"{{inputs}}\", \"{{out}}\"] }}\n",
        win_fixture("window_engine.py").to_string_lossy(),
        win_fixture("weights.npz").to_string_lossy()
    );
    let anchor = "window = { python = \"pipeline/model.py\", name = \"WINDOW\" }\n";
    replace_in(
        &ex.join("plumbline.toml"),
        anchor,
        &format!("{anchor}{engine}"),
    );
    let said = passes(&ex, "forward-contract");
    assert!(said.contains("reference 64 rows"), "{said}");
}

/// An inference path gets every bar of the slice (and NaN probes as windows of their own symbol) and
/// builds its windows itself, as live code does; it is compared on the rows that end a window. A path
/// that puts a window's bars newest first is caught at the window's last bar.
#[test]
#[cfg(feature = "native")]
fn inference_paths_build_their_own_windows_and_are_compared_on_window_ends() {
    let (_d, ex) = win_example(|_| {});
    let live = win_fixture("window_live.py");
    let reversed = ex.join("live/window_live_reversed.py");
    let text = std::fs::read_to_string(&live).unwrap();
    let bad = text.replace(
        "wins.append(scaled[t - WINDOW + 1 : t + 1])",
        "wins.append(scaled[t - WINDOW + 1 : t + 1][::-1])",
    );
    assert_ne!(bad, text);
    let bad = bad.replace(
        "sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))",
        &format!(
            "sys.path.insert(0, {:?})",
            win_fixture("").to_string_lossy()
        ),
    );
    std::fs::write(&reversed, bad).unwrap();
    let path = |script: &Path| {
        format!(
            "{{ argv = [\"python3\", {:?}, {:?}, \"checkpoints/momentum_win.json\", \"{{features}}\", \"{{out}}\"] }}",
            script.to_string_lossy(),
            win_fixture("weights.npz").to_string_lossy()
        )
    };
    let cfg = ex.join("plumbline.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let start = text.find("[inference]").unwrap();
    let end = start + text[start..].find("\n\n").unwrap();
    let with_live = |script: &Path| {
        let section = format!(
            "[inference]\ncheckpoint = \"checkpoints/momentum_win.pt\"\nbacktest = {}\nlive = {}",
            path(&live),
            path(script)
        );
        std::fs::write(&cfg, format!("{}{section}{}", &text[..start], &text[end..])).unwrap();
    };
    with_live(&live);
    let said = passes(&ex, "inference-parity");
    assert!(
        said.contains("2 paths · 2094 windows + 15 NaN probes"),
        "{said}"
    );
    with_live(&reversed);
    let said = fails(&ex, "inference-parity");
    assert!(
        said.contains("error[inference-mismatch]: the live inference path's `direction.0` differs from plumbline's engine"),
        "{said}"
    );
    assert!(!said.contains("the backtest inference path"), "{said}");
}

#[cfg(feature = "native")]
fn rnn_fixture(file: &str) -> PathBuf {
    fixture(&format!("models/momentum_rnn/{file}"))
}

/// The momentum example with the LSTM or GRU (`name`) trained over 32-bar windows.
#[cfg(feature = "native")]
fn rnn_example(name: &str, edit: impl FnOnce(&mut Value)) -> (tempfile::TempDir, PathBuf) {
    windowed_example(
        name,
        [
            rnn_fixture(&format!("{name}.pt")),
            rnn_fixture(&format!("{name}.json")),
            rnn_fixture(&format!("{name}_outputs.json")),
        ],
        32,
        edit,
    )
}

/// The LSTM (two layers, last step) and the bidirectional GRU (final hidden states) trained by PyTorch
/// on the momentum data pass forward-contract natively, and their integrated gradients, per feature
/// and lag, are PyTorch's (a 4096-step trapezoid in float64) on four windows.
#[test]
#[cfg(feature = "native")]
fn lstm_and_gru_match_pytorch_outputs_and_integrated_gradients() {
    use plumbline::audit::Unit;
    use plumbline::audit::integrated_gradients::{Settings, attribute};
    use plumbline::engine::{self, EngineKind};
    use plumbline::matrix::Matrix;

    for name in ["lstm", "gru"] {
        let (_d, ex) = rnn_example(name, |_| {});
        let said = passes(&ex, "forward-contract");
        assert!(said.contains("reference 64 rows"), "{name}: {said}");
        let loaded = plumbline::config::load(&ex.join("plumbline.toml")).unwrap();
        let info = loaded
            .open_checkpoint(&ex.join(format!("checkpoints/{name}.pt")))
            .unwrap();
        let engine =
            engine::load(EngineKind::Native, &info, &loaded.config.checkpoints.keys).unwrap();
        let reference: Value = serde_json::from_str(
            &std::fs::read_to_string(rnn_fixture(&format!("{name}_outputs.json"))).unwrap(),
        )
        .unwrap();
        // Four of the ten windows PyTorch attributed: a debug build's autodiff is slow.
        let windows: Vec<Vec<f64>> = reference["rows"].as_array().unwrap()[..4]
            .iter()
            .map(|r| crate::util::numbers(&r["scaled"]))
            .collect();
        let x = Matrix::from_rows(engine.input_dim(), &windows);
        assert_eq!(x.cols, 32 * 14);
        let torch = reference["integrated_gradients"].as_object().unwrap();
        let units: Vec<Unit> = torch
            .iter()
            .flat_map(|(head, per_unit)| {
                (0..per_unit.as_array().unwrap().len()).map(|k| Unit {
                    head: head.clone(),
                    unit: k,
                })
            })
            .collect();
        let settings = Settings {
            tolerance: 1e-5,
            max_steps: 4096,
        };
        let got = attribute(
            engine.as_ref(),
            &x,
            &vec![0.0; x.cols],
            &units,
            settings,
            &mut |_, _| {},
        )
        .unwrap();
        let mut worst = 0.0f64;
        for (u, unit) in units.iter().enumerate() {
            let want = torch[&unit.head].as_array().unwrap()[unit.unit]
                .as_array()
                .unwrap();
            for (r, row) in want.iter().take(windows.len()).enumerate() {
                for (g, w) in got[r].attributions[u].iter().zip(crate::util::numbers(row)) {
                    worst = worst.max((g - w).abs());
                }
            }
        }
        assert!(
            worst <= 1e-4,
            "{name}: integrated gradients differ from PyTorch's by {worst}"
        );
    }
}

/// What the tensors of a recurrent model cannot show, and what they can, each caught by name: an
/// LSTM ported with its input and forget gates swapped (the same tensors; only the outputs differ), a
/// bidirectional GRU declared one-way, a hidden size off by one, the final states declared as the
/// last step.
#[test]
#[cfg(feature = "native")]
fn recurrent_defects_are_caught_by_name() {
    let (_d, ex) = rnn_example("lstm", |_| {});
    std::fs::copy(
        rnn_fixture("lstm_gates_swapped.pt"),
        ex.join("checkpoints/lstm.pt"),
    )
    .unwrap();
    let said = fails(&ex, "forward-contract");
    assert!(said.contains("error[forward-reference-mismatch]"), "{said}");
    assert!(said.contains("error[forward-reference-stale]"), "{said}");

    let (_d, ex) = rnn_example("gru", |s| {
        s["arch"]["layers"][0]["bidirectional"] = false.into()
    });
    let said = fails(&ex, "checkpoint-inventory");
    assert!(
        said.contains("`arch.layers.1.in_features` is 24, but `rnn` (layers.0) gives 12"),
        "{said}"
    );

    let (_d, ex) = rnn_example("lstm", |s| {
        s["arch"]["layers"][0]["hidden_size"] = 15.into()
    });
    let said = fails(&ex, "checkpoint-inventory");
    assert!(
        said.contains("`arch.layers.1.in_features` is 16, but `rnn` (layers.0) gives 15"),
        "{said}"
    );

    // One layer declared where the checkpoint has two: the widths agree, so only the second layer's
    // tensors show it; the native engine refuses to run without them.
    let (_d, ex) = rnn_example("lstm", |s| s["arch"]["layers"][0]["num_layers"] = 1.into());
    let said = fails(&ex, "checkpoint-inventory");
    assert!(
        said.contains("error[arch-tensor-unused]") && said.contains("rnn.weight_ih_l1"),
        "{said}"
    );
    let said = fails(&ex, "forward-contract");
    assert!(
        said.contains("`arch` leaves tensors of its own modules unused")
            && said.contains("rnn.weight_ih_l1"),
        "{said}"
    );

    let (_d, ex) = rnn_example("gru", |s| s["arch"]["layers"][0]["output"] = "last".into());
    let said = fails(&ex, "forward-contract");
    assert!(said.contains("error[forward-arch-differs]"), "{said}");
    assert!(
        said.contains("→ last") && said.contains("→ final"),
        "{said}"
    );
}

/// A window the slice cannot fill stops the run naming the slice, and says the likelier cause when the
/// checkpoint was trained on another window.
#[test]
fn a_window_the_slice_cannot_fill_names_the_checkpoints_window() {
    let (_d, ex) = win_example(|_| {});
    replace_in(
        &ex.join("pipeline/model.py"),
        "WINDOW = 8 ",
        "WINDOW = 5000 ",
    );
    let out = plumbline(&ex, &["gate", "norm-stats"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let said = stderr(&out);
    assert!(said.contains("data/slice.csv:2"), "{said}");
    assert!(
        said.contains("no window of 5000 bars can be built"),
        "{said}"
    );
    assert!(
        said.contains("note: the checkpoint was trained on windows of 8 bars, the code declares windows of 5000 bars (feature-schema: window-mismatch)"),
        "{said}"
    );
}
