//! The one integration-test binary (one link step). Each module is a group of tests; `util` has the
//! shared helpers (a torch-style zip writer, the example pipeline copied to a temp dir, the binary).

mod action;
mod adoption;
mod audit;
mod audit_command;
mod base;
mod benign;
mod bytes_read;
mod changed;
mod checkpoints;
mod ci;
mod cli;
mod commands;
mod corpus;
mod defects;
mod docs_and_schemas;
mod empty;
mod engine;
mod gates;
mod github_api;
mod hook;
mod init;
mod layers;
mod legacy;
mod limits;
mod malicious;
mod manifest;
mod models;
mod mutation;
mod npm;
mod packet;
mod pickle_safety;
mod pipes;
mod safetensors_strict;
mod scalers;
mod util;
