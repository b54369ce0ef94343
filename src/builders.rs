//! The feature builders of `[builders]` (training, backtest, live) as protocol commands, and the
//! columns each declares. Feature parity, feature schema and leakage all run or read them.

use crate::config::{CommandSpec, Loaded};
use crate::error::Result;
use crate::protocol::Command;
use crate::source::{Fact, Resolver};

/// A configured builder, by name.
pub fn builders(loaded: &Loaded) -> Vec<(&'static str, &CommandSpec)> {
    let Some(b) = &loaded.config.builders else {
        return vec![];
    };
    [
        ("training", &b.training),
        ("backtest", &b.backtest),
        ("live", &b.live),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.as_ref().map(|s| (n, s)))
    .collect()
}

/// The command that runs builder `name` (`builders.<name>` in the config).
pub fn command<'a>(loaded: &Loaded, name: &str, spec: &'a CommandSpec) -> Command<'a> {
    let b = loaded
        .config
        .builders
        .as_ref()
        .expect("builders configured");
    Command::new(
        spec,
        format!("builders.{name}"),
        format!("{name} builder"),
        b.timeout_secs,
    )
}

/// The builder's declared columns (its `columns` source), resolved with their lines.
pub fn declared_columns(
    loaded: &Loaded,
    spec: &CommandSpec,
) -> Result<Option<(Vec<String>, Fact)>> {
    let Some(source) = &spec.columns else {
        return Ok(None);
    };
    let fact = Resolver::new(loaded, None).resolve(source)?;
    let names = crate::facts::strings(&fact.value).ok_or_else(|| {
        crate::error::Error::at(
            fact.origin.clone(),
            "a builder's `columns` must be a list of strings",
        )
    })?;
    Ok(Some((names, fact)))
}

/// A table whose key columns are missing or repeat a row: the command's failure.
pub fn bad_keys(e: crate::error::Error) -> crate::protocol::Failure {
    crate::protocol::Failure::Malformed {
        error: e,
        stderr: String::new(),
    }
}
