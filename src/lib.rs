//! plumbline: audits an ML trading pipeline end to end (training → checkpoint → inference contract →
//! backtest → live → docs) and gates pull requests on it.
//!
//! Data flows one way: config → sources → facts → contract → gates → findings → renderers.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod affected;
pub mod audit;
pub mod base;
pub mod builders;
pub mod canonical;
pub mod changes;
pub mod check;
pub mod checkpoint;
pub mod ci;
pub mod cli;
pub mod config;
pub mod contract;
pub mod distribution;
pub mod docs;
pub mod edge_prices;
pub mod engine;
pub mod error;
pub mod exec;
pub mod facts;
pub mod finding;
pub mod gates;
pub mod git;
#[cfg(feature = "github-api")]
pub mod github;
pub mod hook;
pub mod init;
pub mod inventory;
pub mod keypath;
pub mod manifest;
pub mod matrix;
pub mod normal;
pub mod packet;
pub mod paths;
pub mod progress;
pub mod protocol;
pub mod render;
pub mod ruleset;
pub mod scaler;
pub mod sink;
pub mod slice;
pub mod snapshot;
pub mod source;
pub mod stats;
pub mod table;
pub mod text;
