//! `cargo xtask`: the project's tasks, in Rust so they run the same everywhere.
//!
//! - `serve`: installs what the app needs, then serves it on http://127.0.0.1:8080.
//! - `test`: installs what the tests need on a fresh machine, then runs every check.
//! - `fuzz`: runs every fuzz target for longer (`--minutes N` each).
//! - `bench`: generates a large synthetic trace file and prints `tracesift score` throughput.
//! - `gen`: writes a synthetic PerturbQA-style trace file.
//! - `demo`: writes the app's demo data (`public/demo.jsonl.gz`) afresh.
//! - `precache`: run by Trunk after each build, lists the build's files for the service worker.
//! - `record`: re-creates the real provider output in tests/data/real/ (by hand, not in CI).

mod bench;
mod demo;
mod generate;
mod model;
mod python;
mod record;
mod test;
mod web;

use anyhow::bail;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => ("help", &[][..]),
    };
    match task {
        "test" => test::run(rest),
        "fuzz" => test::run_fuzz(rest),
        "bench" => bench::run(rest),
        "gen" => generate::run(rest),
        "record" => record::run(rest),
        "serve" => web::serve(rest),
        "demo" => web::write_demo(),
        "model" => model::fetch(),
        "precache" => web::precache(rest),
        "help" | "-h" | "--help" => {
            println!("usage: cargo xtask <serve|test|bench|gen|demo|record> [options]\n");
            println!(
                "  serve           install what the app needs, then serve it on http://127.0.0.1:8080"
            );
            println!(
                "  test            install missing tools, then fmt, clippy, tests, wasm32 build, fuzz"
            );
            println!(
                "  fuzz            run every fuzz target longer than the tests do (--minutes N each)"
            );
            println!(
                "  bench           generate a synthetic file and print tracesift score MB/s, traces/s, peak RSS"
            );
            println!(
                "  gen             write a synthetic PerturbQA-style trace file (see `cargo xtask gen --help`)"
            );
            println!("  demo            write the app's demo data (public/demo.jsonl.gz) afresh");
            println!(
                "  model           fetch the all-MiniLM-L6-v2 weights for `semantic` (target/model)"
            );
            println!(
                "  record          re-create tests/data/real/ from real clients and servers (by hand, not in CI)"
            );
            Ok(())
        }
        other => bail!("unknown task `{other}`; try `cargo xtask help`"),
    }
}
