use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = plumbline::cli::Cli::parse();
    let mut out = anstream::stdout().lock();
    let mut err = anstream::stderr().lock();
    match plumbline::cli::run(&cli, &mut out, &mut err) {
        Ok(code) => ExitCode::from(code),
        // A closed pipe (`plumbline check | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(2),
    }
}
