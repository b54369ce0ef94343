use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = plumbline::cli::Cli::parse();
    let mut out = anstream::stdout().lock();
    // Not locked for the whole run: the progress bar draws to stderr from its own thread.
    let mut err = anstream::stderr();
    match plumbline::cli::run(&cli, &mut out, &mut err) {
        Ok(code) => ExitCode::from(code),
        // A closed pipe (`plumbline check | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(2),
    }
}
