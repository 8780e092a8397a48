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
    let opts = match args.get(1).map(String::as_str) {
        Some("ssc") => datasets::SpikeLoadOptions::ssc(),
        _ => datasets::SpikeLoadOptions::shd(),
    };
    // Two phases, to see how much of the load is I/O: reading the bytes, then parsing them.
    let start = Instant::now();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(_) => return report(datasets::load_spike_h5(path, &opts).map(|(d, _)| d), 0.0),
    };
    let read_secs = start.elapsed().as_secs_f64();
    let result = datasets::load_spike_h5_bytes(bytes, std::path::Path::new(path), &opts).map(|(d, _)| d);
    let parse_secs = start.elapsed().as_secs_f64() - read_secs;
    println!("read {read_secs:.3} s, parse {parse_secs:.3} s");
    report(result, read_secs + parse_secs)
}

fn report(result: datasets::Result<datasets::SpikeDataset>, secs: f64) -> std::process::ExitCode {
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
