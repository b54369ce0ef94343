use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = plumbline::cli::Cli::parse();
    let mut out = anstream::stdout().lock();
    // Not locked for the whole run: the progress bar draws to stderr from its own thread.
    let mut err = anstream::stderr();
    // Write errors (a closed pipe) never change the code: `run` decides it (src/sink.rs).
    ExitCode::from(plumbline::cli::run(&cli, &mut out, &mut err))
}
