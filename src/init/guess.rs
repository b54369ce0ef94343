//! Which of the values a scan found are the pipeline's facts: rules on names and shapes, each choice
//! kept with why, so the written config can say where every fact was found (or that it was not).

use serde_json::Value;

use super::scan::{Checkpoint, Found, Scan};
use crate::scaler::Kind;

/// A fact of the code and where it was found.
pub struct Chosen<'a> {
    pub found: &'a Found,
    /// Other places that looked like it (said in a comment, so the user can pick another).
    pub others: Vec<&'a Found>,
}

/// The code's facts.
#[derive(Default)]
pub struct Code<'a> {
    pub columns: Option<Chosen<'a>>,
    pub version: Option<Chosen<'a>>,
    pub horizon: Option<Chosen<'a>>,
    pub thresholds: Option<Chosen<'a>>,
    pub heads: Option<Chosen<'a>>,
    pub heads_version: Option<Chosen<'a>>,
    pub dtypes: Option<Chosen<'a>>,
    pub nan_policy: Option<Chosen<'a>>,
    pub scaler_kind: Option<Chosen<'a>>,
    pub factor: Option<Chosen<'a>>,
    pub epsilon: Option<Chosen<'a>>,
    pub clip: Option<Chosen<'a>>,
}

fn is_feature_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A list of at least two distinct identifier-like strings.
pub fn feature_list(v: &Value) -> Option<Vec<&str>> {
    let items = v.as_array()?;
    let names: Vec<&str> = items.iter().map(Value::as_str).collect::<Option<_>>()?;
    let distinct: std::collections::BTreeSet<&str> = names.iter().copied().collect();
    (names.len() >= 2 && distinct.len() == names.len() && names.iter().all(|n| is_feature_name(n)))
        .then_some(names)
}

/// Directories whose files are outputs, tests or docs rather than the pipeline's own declarations.
const OUTPUT_DIRS: &[&str] = &[
    "artifacts",
    "reports",
    "report",
    "output",
    "outputs",
    "results",
    "docs",
    "tests",
    "test",
    "data",
    "mlruns",
    "checkpoints",
    "logs",
    "runs",
    "notebooks",
];

/// How much a file looks like where a team declares its facts: Python, YAML and TOML over JSON (often
/// written by a run), anything over outputs, tests and docs.
fn file_rank(file: &str) -> u32 {
    let generated = file
        .split('/')
        .rev()
        .skip(1)
        .any(|d| OUTPUT_DIRS.contains(&d.to_ascii_lowercase().as_str()));
    let declared = [".py", ".yaml", ".yml", ".toml"]
        .iter()
        .any(|e| file.ends_with(e));
    u32::from(!generated) * 2 + u32::from(declared)
}

fn pick<'a>(found: &'a [Found], score: impl Fn(&Found) -> Option<u32>) -> Option<Chosen<'a>> {
    let mut hits: Vec<(u32, &Found)> = found
        .iter()
        .filter_map(|f| score(f).map(|s| (s * 10 + file_rank(f.file()), f)))
        .collect();
    // Highest score first; the scan's order (sorted paths, source order) breaks ties.
    hits.sort_by_key(|h| std::cmp::Reverse(h.0));
    let mut it = hits.into_iter().map(|h| h.1);
    let first = it.next()?;
    Some(Chosen {
        found: first,
        others: it.take(3).collect(),
    })
}

/// A dtypes value that fits the feature list the way `features.dtypes` is read: one dtype string, a
/// list of strings as long as the features, or a dict with a string for exactly the features.
fn dtypes_fit(v: &Value, features: Option<&[&str]>) -> bool {
    match v {
        Value::String(_) => true,
        Value::Array(a) => {
            a.iter().all(Value::is_string) && features.is_some_and(|f| f.len() == a.len())
        }
        Value::Object(m) => {
            m.values().all(Value::is_string)
                && features
                    .is_some_and(|f| f.len() == m.len() && f.iter().all(|n| m.contains_key(*n)))
        }
        _ => false,
    }
}

fn under_scaler(f: &Found) -> bool {
    let p = f.path();
    let parent = p.rsplit_once('.').map_or("", |(a, _)| a);
    parent.contains("scal") || parent.contains("norm") || p.starts_with("scaler_")
}

/// A checkpoint's feature list: a feature-like list under a name with `feature`, or `columns`.
fn is_feature_cols(f: &Found) -> bool {
    (f.name().contains("feature") || f.name() == "columns") && feature_list(&f.value).is_some()
}

/// The feature list a checkpoint was trained on, if its metadata states one.
pub fn checkpoint_features(ck: &Checkpoint) -> Option<Vec<&str>> {
    ck.values
        .iter()
        .find(|f| is_feature_cols(f))
        .and_then(|f| feature_list(&f.value))
}

/// Pick the code's facts. `trained_on` is the production checkpoint's feature list, if it states one:
/// the code's list that equals it wins.
pub fn code<'a>(
    scan: &'a Scan,
    trained_on: Option<&[&str]>,
    stated_version: Option<&str>,
) -> Code<'a> {
    let found = &scan.code;
    let name_is = |f: &Found, names: &[&str]| names.contains(&f.name().as_str());
    let columns = pick(found, |f| {
        let list = feature_list(&f.value)?;
        let feature = f.name().contains("feature");
        let same = trained_on.is_some_and(|t| t == list.as_slice());
        match (same, feature, f.name() == "columns") {
            (true, true, _) => Some(4),
            (true, false, _) => Some(3),
            (false, true, _) => Some(2),
            (false, false, true) => Some(1),
            _ => None,
        }
    });
    let names = columns.as_ref().and_then(|c| feature_list(&c.found.value));
    let columns_ok = names.clone();
    let columns_ok = columns_ok.as_deref();
    Code {
        columns,
        version: pick(found, |f| {
            let ok =
                matches!(&f.value, Value::String(s) if !s.is_empty()) || f.value.as_u64().is_some();
            // The version the checkpoint states, where the code has it, wins over a package version.
            let same = u32::from(
                stated_version.is_some()
                    && crate::facts::version(&f.value).as_deref() == stated_version,
            ) * 3;
            let p = f.path();
            (ok && (p == "model.version" || p == "model_version" || p == "model.model_version"))
                .then_some(3)
                .or_else(|| (ok && p.ends_with("version") && p.contains("model")).then_some(2))
                .or_else(|| (ok && name_is(f, &["__version__", "version"])).then_some(1))
                .map(|s| s + same)
        }),
        horizon: pick(found, |f| {
            (f.value.as_u64().is_some() && f.name().contains("horizon")).then_some(1)
        }),
        thresholds: pick(found, |f| {
            let m = f.value.as_object()?;
            (f.name().contains("threshold") && !m.is_empty() && m.values().all(Value::is_number))
                .then_some(1)
        }),
        heads: pick(found, |f| {
            let items = f.value.as_array()?;
            (f.name() == "heads"
                && !items.is_empty()
                && items
                    .iter()
                    .all(|h| h.get("name").is_some() && h.get("kind").is_some()))
            .then_some(1)
        }),
        heads_version: pick(found, |f| {
            (name_is(f, &["heads_version", "heads-version"])
                && (f.value.is_string() || f.value.is_u64()))
            .then_some(1)
        }),
        dtypes: pick(found, |f| {
            (name_is(f, &["feature_dtypes", "dtypes", "feature_types"])
                && dtypes_fit(&f.value, columns_ok))
            .then_some(1)
        }),
        nan_policy: pick(found, |f| {
            (name_is(f, &["nan_policy", "nan-policy"]) && f.value.is_string()).then_some(1)
        }),
        ..scaler(found)
    }
}

/// The code's scaler settings: under a key whose parent names a scaler or a normalisation.
fn scaler(found: &[Found]) -> Code<'_> {
    let name_is = |f: &Found, names: &[&str]| names.contains(&f.name().as_str());
    Code {
        scaler_kind: pick(found, |f| {
            let s = f.value.as_str()?;
            (under_scaler(f)
                && name_is(f, &["kind", "method", "type", "name", "scaler_kind"])
                && Kind::parse(s).is_some())
            .then_some(1)
        }),
        factor: pick(found, |f| {
            (under_scaler(f)
                && name_is(f, &["factor", "consistency", "mad_factor", "scaler_factor"])
                && f.value.is_number())
            .then_some(1)
        }),
        epsilon: pick(found, |f| {
            (under_scaler(f) && name_is(f, &["eps", "epsilon"]) && f.value.is_number()).then_some(1)
        }),
        clip: pick(found, |f| {
            (under_scaler(f)
                && name_is(f, &["clip", "clip_value", "clamp", "clip_range"])
                && (f.value.is_number() || f.value.is_array()))
            .then_some(1)
        }),
        ..Code::default()
    }
}

/// A rule that says whether a value is a fact.
type Rule<'a> = Box<dyn Fn(&Found) -> bool + 'a>;

/// The rules that find each `[checkpoints.keys]` fact in a checkpoint's values.
fn key_rules(n_features: Option<usize>) -> Vec<(&'static str, Rule<'static>)> {
    let numbers_of_len = move |f: &Found| {
        f.value.as_array().is_some_and(|a| {
            !a.is_empty()
                && a.iter().all(Value::is_number)
                && n_features.is_none_or(|n| a.len() == n)
        })
    };
    let named = |f: &Found, names: &[&str]| names.contains(&f.name().as_str());
    let stat = |names: &'static [&'static str]| {
        move |f: &Found| under_scaler(f) && named(f, names) && numbers_of_len(f)
    };
    vec![
        ("feature-cols", Box::new(is_feature_cols)),
        (
            "input-dim",
            Box::new(move |f: &Found| {
                named(
                    f,
                    &[
                        "input_dim",
                        "n_features",
                        "in_features",
                        "n_inputs",
                        "num_features",
                    ],
                ) && f.value.as_u64().is_some()
            }),
        ),
        ("median", Box::new(stat(&["median", "medians", "center"]))),
        (
            "mad",
            Box::new(stat(&["mad", "mads", "scale", "iqr_scale"])),
        ),
        ("mean", Box::new(stat(&["mean", "means", "mu"]))),
        ("std", Box::new(stat(&["std", "stds", "sigma", "scale_"]))),
        ("min", Box::new(stat(&["min", "data_min", "data_min_"]))),
        ("max", Box::new(stat(&["max", "data_max", "data_max_"]))),
        (
            "scaler-kind",
            Box::new(move |f: &Found| {
                under_scaler(f)
                    && named(f, &["kind", "method", "type", "name"])
                    && f.value.as_str().is_some_and(|s| Kind::parse(s).is_some())
            }),
        ),
        (
            "scaler-factor",
            Box::new(move |f: &Found| {
                under_scaler(f) && named(f, &["factor", "consistency", "mad_factor"])
            }),
        ),
        (
            "scaler-epsilon",
            Box::new(move |f: &Found| under_scaler(f) && named(f, &["eps", "epsilon"])),
        ),
        (
            "scaler-clip",
            Box::new(move |f: &Found| {
                under_scaler(f) && named(f, &["clip", "clip_value", "clamp"])
            }),
        ),
        (
            "model-version",
            Box::new(move |f: &Found| {
                let p = f.path();
                (p == "model_version" || p == "model.version" || p == "version")
                    && (f.value.is_string() || f.value.is_u64())
            }),
        ),
        (
            "horizon",
            Box::new(move |f: &Found| f.name().contains("horizon") && f.value.as_u64().is_some()),
        ),
    ]
}

/// The `[checkpoints.keys]` entries a checkpoint's metadata needs: (config field, key path) for each
/// fact found under another key than the default, and the fields found under the default key.
pub fn checkpoint_keys(ck: &Checkpoint, n_features: Option<usize>) -> Vec<(&'static str, String)> {
    let v = &ck.values;
    let key = |f: &Found| match &f.place {
        super::scan::Place::Key(_, _, k) => k.clone(),
        super::scan::Place::Python(_, n) => n.clone(),
    };
    // The shortest key path that matches: a Lightning checkpoint's `hyper_parameters.feature_cols` is
    // also its metadata layer's `feature_cols`, which the default key already reaches.
    let first = |rule: &dyn Fn(&Found) -> bool| {
        v.iter()
            .filter(|f| rule(f))
            .map(key)
            .min_by_key(|k| k.matches('.').count())
    };
    let rules = key_rules(n_features);
    rules
        .iter()
        .filter_map(|(field, rule)| first(rule.as_ref()).map(|k| (*field, k)))
        .collect()
}

/// The CSV table that holds every feature column and a timestamp column: the slice of feature rows
/// the model gates run on. Of several, one named like a holdout slice first, then the shortest path.
pub fn slice_file(scan: &Scan, features: &[String]) -> Option<String> {
    if features.is_empty() {
        return None;
    }
    let rank = |path: &str| {
        let p = path.to_ascii_lowercase();
        let named = ["slice", "holdout", "reference", "test"]
            .iter()
            .any(|w| p.contains(w));
        (!named, p.matches('/').count(), path.to_owned())
    };
    scan.tables
        .iter()
        .filter(|(_, cols)| {
            cols.iter().any(|c| c.eq_ignore_ascii_case("timestamp"))
                && features.iter().all(|f| cols.contains(f))
        })
        .map(|(path, _)| path.as_str())
        .min_by_key(|p| rank(p))
        .map(str::to_owned)
}

/// A JSON file of reference outputs: a `rows` list whose rows hold `scaled` inputs and `outputs` by
/// head (what python/plumbline_torch.py `write_reference` writes).
pub fn reference_file(scan: &Scan) -> Option<String> {
    scan.code
        .iter()
        .filter(|f| f.path() == "rows")
        .filter(|f| {
            f.value
                .as_array()
                .and_then(|rows| rows.first())
                .is_some_and(|r| r.get("scaled").is_some() && r.get("outputs").is_some())
        })
        .map(|f| f.file().to_owned())
        .min()
}
