use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = manytask::cli::Cli::parse();
    match manytask::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
