//! `tickcast-loadgen` entry point: run the command line, print any error as one line on
//! stderr, exit non-zero.

use std::process::ExitCode;

fn main() -> ExitCode {
    match tickcast_loadgen::cli::run_cli(std::env::args_os()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` joins the context chain with ": "; newlines inside messages are folded so
            // scripts can rely on exactly one line.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
