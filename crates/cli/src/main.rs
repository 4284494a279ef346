//! The `tracesift` binary: thin glue between files and the core (SPEC §10).

mod args;
mod backend;
mod progress;
mod requests;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match run::run(cli) {
        Ok(code) => code,
        // `tracesift score … | head`: the reader left; that is not an error.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tracesift: {error:#}");
            ExitCode::from(error_code(&error))
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io_error| io_error.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Bad arguments (settings, unreadable inputs) exit 2; anything else that stops a run, 1.
fn error_code(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<run::BadArguments>().is_some() {
        2
    } else {
        1
    }
}
