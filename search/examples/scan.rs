//! `cargo run --release -p logpipe-search --example scan -- DIR QUERY`: scans every NDJSON file of DIR
//! for QUERY (no time range) and prints the hit count, the bytes read and the time taken, as one JSON line.
//! Used by scripts/bench-search.sh against `grep -c`.

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(q)) = (args.next(), args.next()) else {
        eprintln!("usage: scan DIR QUERY");
        std::process::exit(2);
    };
    let request = logpipe_search::Request { q, from: None, to: None, size: Some(50), buckets: None };
    match logpipe_search::scan_files(std::path::Path::new(&dir), &request) {
        Ok(a) => {
            println!("{{\"total\":{},\"files\":{},\"bytes\":{},\"took_ms\":{}}}", a.total, a.files, a.bytes, a.took_ms)
        }
        Err(e) => {
            eprintln!("scan: {e}");
            std::process::exit(1);
        }
    }
}
