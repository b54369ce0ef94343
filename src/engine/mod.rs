//! Engines run the model. Two engines sit behind [`Engine`]: *native* (burn, ndarray backend) for the
//! architectures a checkpoint's `arch` describes, and *command* (the user's own inference entry point)
//! for everything else. Gates see only the trait: scaled inputs in, outputs keyed by head
//! name out.

pub mod arch;
pub mod command;
#[cfg(feature = "native")]
pub mod native;
#[cfg(feature = "native")]
mod recurrent;

use std::collections::BTreeMap;

use crate::checkpoint::CheckpointInfo;
use crate::config::CheckpointKeys;
#[cfg(not(feature = "native"))]
use crate::error::Error;
use crate::error::Result;
use crate::matrix::Matrix;

/// Outputs of one forward pass, keyed by head name (never by position).
pub type Outputs = BTreeMap<String, Matrix>;

/// What runs a model.
pub trait Engine {
    /// `native` or `command`, for messages.
    fn kind(&self) -> &'static str;
    /// The number of input columns the model takes (for windows, `window × features`: a window's
    /// bars side by side, oldest first).
    fn input_dim(&self) -> usize;
    /// Bars per window for a model that takes windows, `None` for rows.
    fn window(&self) -> Option<usize>;
    /// sha256 over the state dict's tensors as this engine reads them (docs/gates/forward-contract.md):
    /// what ties reference outputs to the weights. `None` when the engine does not read the weights (a
    /// command).
    fn weights_sha256(&self) -> Option<Result<String>> {
        None
    }
    /// Run the model on scaled inputs (`rows × input_dim`).
    fn forward(&self, inputs: &Matrix) -> Result<Outputs>;
    /// The gradient of output `unit` of head `head` with respect to each input row (`rows ×
    /// input_dim`), for integrated gradients. `None` when the engine cannot differentiate (a command:
    /// `audit conditions` uses permutation importance for those).
    fn gradients(&self, _inputs: &Matrix, _head: &str, _unit: usize) -> Option<Result<Matrix>> {
        None
    }
}

/// Which engine to build: `[model] engine` (a command) or, by default, the native one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Native,
    Command,
}

impl EngineKind {
    pub fn of(loaded: &crate::config::Loaded) -> EngineKind {
        if loaded.config.model.engine.is_some() {
            EngineKind::Command
        } else {
            EngineKind::Native
        }
    }
}

/// Whether this build can run the native engine.
pub const NATIVE_AVAILABLE: bool = cfg!(feature = "native");

/// Why an engine is not available in this build, for a skipped gate.
pub fn unavailable(kind: EngineKind) -> Option<&'static str> {
    match kind {
        EngineKind::Native if !NATIVE_AVAILABLE => Some(
            "needs the native engine, and this build has no `native` feature (rebuild with default features, or `--features native`)",
        ),
        EngineKind::Native | EngineKind::Command => None,
    }
}

/// Build the engine for a checkpoint that the safe reader has already opened (so its pickle is known
/// to reference only allowlisted globals before any other reader touches it).
pub fn load(
    kind: EngineKind,
    info: &CheckpointInfo,
    keys: &CheckpointKeys,
) -> Result<Box<dyn Engine>> {
    match kind {
        EngineKind::Native => native_engine(info, keys),
        EngineKind::Command => Err(crate::error::Error::msg(
            "the command engine is built from the config (engine::for_check)",
        )),
    }
}

/// The engine `check` uses: the configured command, or the native engine on the production checkpoint.
pub fn for_check(
    loaded: &crate::config::Loaded,
    facts: &crate::facts::Facts,
) -> Result<Box<dyn Engine>> {
    match &loaded.config.model.engine {
        Some(spec) => {
            let heads = facts
                .heads()?
                .to_vec()
                .into_iter()
                .map(|h| (h.name, h.shape.iter().product::<u64>() as usize))
                .collect();
            Ok(Box::new(command::CommandEngine::new(
                loaded,
                spec,
                facts.model_feature_names()?,
                facts.window()?.map(|n| n as usize),
                heads,
                facts.production.path.clone(),
            )?))
        }
        None => {
            let engine = load(
                EngineKind::Native,
                &facts.production,
                &loaded.config.checkpoints.keys,
            )?;
            // The slice's windows are the code's: a model of another shape never runs on them.
            let code = facts.window()?;
            if engine.window().map(|n| n as u64) != code {
                return Err(crate::error::Error::at(
                    facts.code.window.origin.clone(),
                    format!(
                        "the code declares {} ({}), but the production checkpoint's `arch` takes {}: the model gates will not run it on inputs of another shape",
                        crate::facts::window_text(code),
                        if loaded.config.model.window.is_some() {
                            "`[model] window`"
                        } else {
                            "no `[model] window`"
                        },
                        crate::facts::window_text(engine.window().map(|n| n as u64))
                    ),
                ));
            }
            Ok(engine)
        }
    }
}

#[cfg(feature = "native")]
fn native_engine(info: &CheckpointInfo, keys: &CheckpointKeys) -> Result<Box<dyn Engine>> {
    let arch = arch::Arch::read(info, keys)?;
    Ok(Box::new(native::NativeEngine::load(info, keys, arch)?))
}

#[cfg(not(feature = "native"))]
fn native_engine(_: &CheckpointInfo, _: &CheckpointKeys) -> Result<Box<dyn Engine>> {
    Err(Error::msg(format!(
        "the native engine {}",
        unavailable(EngineKind::Native).unwrap_or("is unavailable")
    )))
}
