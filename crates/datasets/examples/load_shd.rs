//! Loads an SHD/SSC-layout file and prints its statistics and the load throughput.
//!
//! `cargo run --release -p datasets --example load_shd -- PATH [shd|ssc]`

use std::time::Instant;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: load_shd PATH [shd|ssc]");
        return std::process::ExitCode::from(2);
    };
    let start = Instant::now();
    let result = match args.get(1).map(String::as_str) {
        Some("ssc") => datasets::load_ssc(path),
        _ => datasets::load_shd(path),
    };
    let secs = start.elapsed().as_secs_f64();
    match result {
        Ok(d) => {
            println!("{:?}", d.stats());
            println!(
                "loaded {} events in {secs:.3} s: {:.1} M events/s",
                d.num_events(),
                d.num_events() as f64 / secs / 1e6
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
