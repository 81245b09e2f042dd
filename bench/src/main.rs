//! `ballast-bench` binary: parses flags, runs, prints text or JSON.
//!
//! Exit status: 0 when the run completed (request errors are reported, not
//! fatal), 1 when it could not run (no endpoint reachable, setup failed),
//! 2 for invalid arguments.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use ballast_bench::{run, Cli};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ballast-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let show_progress = !cli.global.json && std::io::stdout().is_terminal();
    match runtime.block_on(run(&cli, show_progress)) {
        Ok(report) => {
            let text = if cli.global.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => json + "\n",
                    Err(e) => {
                        eprintln!("ballast-bench: cannot encode the report: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                report.to_text()
            };
            // write! rather than print!: a closed pipe (`| head`) must not panic.
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ballast-bench: cannot write the report: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("ballast-bench: error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
