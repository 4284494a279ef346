//! `cargo xtask bench`: builds the release CLI, generates (or reuses) a large synthetic trace
//! file, and prints `tracesift score` throughput (MB/s, traces/s) and peak memory, plus the
//! time of one `filter` and one `eval` run, together with the CPU the numbers came from,
//! and what the SPEC §5b signals add to it (`crates/core/examples/signal_cost.rs`).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::generate::{self, GenAmount, GenOptions};

const USAGE: &str = "\
usage: cargo xtask bench [--size-mb 100,1000] [--keep-file] [--dir target/bench]
       cargo xtask bench --edge-cases [--dir target/bench]

  --size-mb M,…  sizes of the synthetic canonical JSONL files, each benchmarked in turn
                 (1 MB = 1,000,000 bytes; default 100,1000); the app runs on the largest
  --keep-file    keep the generated files (they are reused by the next run of that size)
  --dir DIR      where the file, report and logs go (default: <workspace>/target/bench)
  --edge-cases   instead: a 2 GB file, a file of one 500 MB line and a file of a million
                 one-token traces, each through the CLI and the app (about 5 GB of disk,
                 deleted afterwards)";

const SCORE_REPETITIONS: usize = 3;
/// How often the child's peak RSS is read from /proc; short enough for runs of a second.
const RSS_POLL_INTERVAL: Duration = Duration::from_millis(10);
const BYTES_PER_MEGABYTE: f64 = 1e6;

struct BenchArgs {
    sizes_megabytes: Vec<f64>,
    keep_file: bool,
    edge_cases: bool,
    directory: Option<PathBuf>,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(bench_args) = parse_args(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    let workspace_root = workspace_root()?;
    let directory = bench_args
        .directory
        .clone()
        .unwrap_or_else(|| workspace_root.join("target").join("bench"));
    fs::create_dir_all(&directory)
        .with_context(|| format!("cannot create {}", directory.display()))?;
    if bench_args.edge_cases {
        let tracesift = build_release_cli(&workspace_root)?;
        return edge_cases(&tracesift, &directory);
    }

    let machine = describe_machine();
    println!("machine: {machine}");

    let tracesift = build_release_cli(&workspace_root)?;
    let mut sizes = bench_args.sizes_megabytes.clone();
    sizes.sort_by(f64::total_cmp);
    let mut largest = None;
    for (idx, &size) in sizes.iter().enumerate() {
        let input_path = bench_size(&machine, &tracesift, &directory, size)?;
        if idx == 0 {
            bench_core_example("cost of the §5b signals", "signal_cost", &input_path)?;
            bench_embedding()?;
        }
        if idx + 1 == sizes.len() {
            bench_core_example(
                "cost of \"which signal fits\" (the ranking with 1,000 resamples)",
                "ranking_cost",
                &input_path,
            )?;
            largest = Some(input_path);
        } else {
            remove_input(&input_path, bench_args.keep_file)?;
        }
    }
    let gpu = bench_gpu();
    let app = match &largest {
        Some(path) => bench_app(path)
            .and_then(|()| bench_interaction(&directory))
            .and_then(|()| bench_tab_embedding()),
        None => Ok(()),
    };
    if let Some(path) = &largest {
        remove_input(path, bench_args.keep_file)?;
    }
    gpu?;
    app
}

/// Benchmark files are big; leaving them behind fills the disk run after run.
fn remove_input(input_path: &Path, keep: bool) -> anyhow::Result<()> {
    if keep {
        println!("kept {}", input_path.display());
        return Ok(());
    }
    fs::remove_file(input_path)
        .with_context(|| format!("cannot delete {}", input_path.display()))?;
    println!(
        "deleted {} (pass --keep-file to keep it)",
        input_path.display()
    );
    Ok(())
}

/// The CLI and the json + numpy baseline on a generated file of `size_megabytes`; returns
/// the file (for the app's benchmark).
fn bench_size(
    machine: &str,
    tracesift: &Path,
    directory: &Path,
    size_megabytes: f64,
) -> anyhow::Result<PathBuf> {
    let options = GenOptions {
        amount: GenAmount::Bytes((size_megabytes * BYTES_PER_MEGABYTE).round() as u64),
        ..GenOptions::default()
    };
    let input_path = directory.join(cached_file_name(size_megabytes, &options));
    let generated_traces = prepare_input(&options, &input_path)?;
    let input_bytes = fs::metadata(&input_path)
        .with_context(|| format!("cannot read the size of {}", input_path.display()))?
        .len();

    let result = run_benchmarks(tracesift, &input_path, directory);
    let baseline = bench_python_baseline(tracesift, &input_path, directory);
    let measurements = result?;
    let report = RunReport::read(&directory.join("report.json"));
    print_table(
        machine,
        input_bytes,
        report.traces.or(generated_traces),
        &report,
        &measurements,
    );
    match baseline {
        Ok(baseline) => {
            let best = measurements
                .score
                .iter()
                .map(|m| m.seconds)
                .fold(f64::INFINITY, f64::min);
            println!(
                "json + numpy baseline (scripts/reference.py score): {:.2} s, {:.1} MB/s, peak RSS {}; tracesift score is {:.0}x faster on one core; the two agree on {} rows (to 1e-6 relative)",
                baseline.measurement.seconds,
                input_bytes as f64 / BYTES_PER_MEGABYTE / baseline.measurement.seconds,
                format_megabytes(baseline.measurement.peak_rss_bytes),
                baseline.measurement.seconds / best,
                baseline.rows_agreeing
            );
        }
        Err(error) => println!("json + numpy baseline: not measured: {error:#}"),
    }
    Ok(input_path)
}

/// The files users must not be able to break it with: each must finish or fail with a
/// clear message, in the CLI and in the app, and none may hang.
fn edge_cases(tracesift: &Path, directory: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let two_gb = directory.join("edge-2gb.jsonl");
    let options = GenOptions {
        amount: GenAmount::Bytes(2_000_000_000),
        ..GenOptions::default()
    };
    prepare_input(&options, &two_gb)?;
    // One trace whose log-probs fill a 500 MB line, then a small one.
    let one_line = directory.join("edge-one-500mb-line.jsonl");
    {
        let mut file = std::io::BufWriter::new(File::create(&one_line)?);
        file.write_all(br#"{"question_id":"big","answer":"up","logprobs":["#)?;
        let block = vec!["-0.1234567"; 100_000].join(",");
        let mut written = 0;
        while written < 500_000_000 {
            if written > 0 {
                file.write_all(b",")?;
            }
            file.write_all(block.as_bytes())?;
            written += block.len() + 1;
        }
        file.write_all(
            b"]}\n{\"question_id\":\"small\",\"answer\":\"down\",\"logprobs\":[-0.5]}\n",
        )?;
    }
    let one_token = directory.join("edge-1m-one-token-traces.jsonl");
    {
        let mut file = std::io::BufWriter::new(File::create(&one_token)?);
        for idx in 0..1_000_000u32 {
            writeln!(
                file,
                r#"{{"question_id":"q{}","answer":"{}","logprobs":[-0.{:03}]}}"#,
                idx / 9,
                ["up", "down", "none"][idx as usize % 3],
                idx % 997
            )?;
        }
    }
    crate::web::ensure_chromium()?;
    crate::web::build_release()?;
    let mut outcome = Ok(());
    for file in [&two_gb, &one_line, &one_token] {
        let size = fs::metadata(file)?.len() as f64 / BYTES_PER_MEGABYTE;
        println!("\n== {} ({size:.0} MB)", file.display());
        let input = file.to_string_lossy().into_owned();
        let null_device = if cfg!(windows) { "NUL" } else { "/dev/null" };
        match measure(
            tracesift,
            &["score", &input, "--out", null_device],
            &directory.join("edge.stderr.txt"),
        ) {
            Ok(m) => println!(
                "tracesift score: {:.2} s, peak RSS {}",
                m.seconds,
                format_megabytes(m.peak_rss_bytes)
            ),
            Err(error) => {
                println!("tracesift score: {error:#}");
                outcome = Err(error);
            }
        }
        let status = Command::new("node")
            .args(["tests/e2e/bench-app.mjs", &input])
            .current_dir(crate::test::workspace_root())
            .status()
            .context("cannot start node")?;
        if !status.success() {
            outcome = Err(anyhow::anyhow!("the app failed on {input} ({status})"));
        }
        fs::remove_file(file)?;
    }
    outcome
}

/// Runs `cargo run --release -p PACKAGE --example EXAMPLE -- ARGS` from the workspace root
/// with `env` set, failing with `what` when it fails.
fn run_example(
    package: &str,
    example: &str,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &std::ffi::OsStr)],
    what: &str,
) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["run", "--release", "--quiet", "-p"])
        // `package` may carry its features: "tracesift-embed --features gpu".
        .args(package.split(' '))
        .args(["--example", example, "--"])
        .args(args)
        .envs(env.iter().copied())
        .current_dir(crate::test::workspace_root())
        .status()
        .context("cannot start cargo")?;
    if !status.success() {
        bail!("the {what} benchmark failed with {status}");
    }
    Ok(())
}

/// A core example that measures one cost in-process on `input`, under `heading`:
/// `signal_cost` (the share of the run that the §5b signals take, on the smallest file)
/// and `ranking_cost` (ranking every metric with its bootstrap intervals, on the largest
/// file's labelled traces); crates/core/examples/ says how each measures.
fn bench_core_example(heading: &str, example: &str, input: &Path) -> anyhow::Result<()> {
    println!("\n== {heading}");
    run_example(
        "tracesift-core",
        example,
        &[input.as_os_str()],
        &[],
        example,
    )
}

/// The GPU kernels against the CPU path at several sizes (crates/gpu/examples/bench.rs), on
/// whatever adapter this machine has (Mesa's lavapipe where there is no GPU).
fn bench_gpu() -> anyhow::Result<()> {
    println!("\n== GPU kernels against the CPU path");
    crate::web::ensure_vulkan()?;
    // Mesa's Vulkan loader wants a runtime directory.
    let runtime =
        std::env::var_os("XDG_RUNTIME_DIR").unwrap_or_else(|| std::env::temp_dir().into());
    let runtime_env = [("XDG_RUNTIME_DIR", runtime.as_os_str())];
    run_example("tracesift-gpu", "bench", &[], &runtime_env, "GPU")?;
    // The embedding model's encoder on the GPU (crates/embed/examples/gpu_speed.rs), on
    // whatever adapter wgpu finds.
    crate::model::fetch()?;
    let model = crate::model::model_dir();
    run_example(
        "tracesift-embed --features gpu",
        "gpu_speed",
        &[model.as_os_str()],
        &runtime_env,
        "GPU embedding",
    )
}

/// The json + numpy implementation a researcher would write (scripts/reference.py), timed
/// on the same file; its rows must match tracesift's.
struct Baseline {
    measurement: Measurement,
    rows_agreeing: usize,
}

fn bench_python_baseline(
    tracesift: &Path,
    input_path: &Path,
    directory: &Path,
) -> anyhow::Result<Baseline> {
    let input = input_path.to_string_lossy().into_owned();
    let ours_path = directory.join("scores.tracesift.jsonl");
    let theirs_path = directory.join("scores.reference.jsonl");
    let script = workspace_root()?.join("scripts/reference.py");
    // The project's venv has numpy (a system Python may not).
    let python = crate::python::venv_python()?;
    let measurement = measure(
        Path::new(&python),
        &[
            &script.to_string_lossy(),
            "score",
            &input,
            "--out",
            &theirs_path.to_string_lossy(),
        ],
        &directory.join("reference.stderr.txt"),
    )?;
    println!(
        "json + numpy baseline: {:.3} s, peak RSS {}",
        measurement.seconds,
        format_megabytes(measurement.peak_rss_bytes)
    );
    measure(
        tracesift,
        &["score", &input, "--out", &ours_path.to_string_lossy()],
        &directory.join("score.stderr.txt"),
    )?;
    let ours = fs::read_to_string(&ours_path)?;
    let theirs = fs::read_to_string(&theirs_path)?;
    let rows_agreeing = compare_score_rows(&ours, &theirs)?;
    let _ = fs::remove_file(&ours_path);
    let _ = fs::remove_file(&theirs_path);
    Ok(Baseline {
        measurement,
        rows_agreeing,
    })
}

/// Every row equal: strings and nulls exactly, numbers to 1e-6 relative (or both zero up to
/// rounding: an eigensolver gives 1e-16 where a closed form gives 0). Returns the count.
fn compare_score_rows(ours: &str, theirs: &str) -> anyhow::Result<usize> {
    let (ours, theirs): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    if ours.len() != theirs.len() {
        anyhow::bail!(
            "tracesift wrote {} rows, the baseline {}",
            ours.len(),
            theirs.len()
        );
    }
    for (row_idx, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        let a: serde_json::Value = serde_json::from_str(a)?;
        let b: serde_json::Value = serde_json::from_str(b)?;
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            anyhow::bail!("row {}: not a JSON object", row_idx + 1);
        };
        for (key, value) in a {
            let other = b.get(key).unwrap_or(&serde_json::Value::Null);
            let same = match (value.as_f64(), other.as_f64()) {
                (Some(x), Some(y)) => {
                    (x - y).abs() <= 1e-6 * x.abs().max(y.abs()) || (x - y).abs() <= 1e-12
                }
                _ => value == other,
            };
            if !same {
                anyhow::bail!(
                    "row {}: `{key}` is {value} in tracesift, {other} in the baseline",
                    row_idx + 1
                );
            }
        }
    }
    Ok(ours.len())
}

/// The browser app: release wasm sizes, and the time to score the demo data in headless
/// Chromium with the main thread's longest task.
fn bench_app(input: &Path) -> anyhow::Result<()> {
    println!("\n== the app (release build, headless Chromium)");
    crate::web::ensure_chromium()?;
    for (name, bytes) in crate::web::build_release()? {
        println!("release wasm: {name} {:.0} KB", bytes as f64 / 1024.0);
    }
    for file in [None, Some(input)] {
        let mut command = std::process::Command::new("node");
        command
            .arg("tests/e2e/bench-app.mjs")
            .current_dir(crate::test::workspace_root());
        if let Some(file) = file {
            command.arg(file);
        }
        let status = command.status().context("cannot start node")?;
        if !status.success() {
            anyhow::bail!("the app benchmark failed with {status}");
        }
    }
    Ok(())
}

/// The sentence-embedding model of `semantic` on the CPU (crates/embed/examples/speed.rs):
/// milliseconds a 256-word-piece text on one thread, then on every core; then PyTorch's
/// (sentence-transformers) on the same text.
fn bench_embedding() -> anyhow::Result<()> {
    println!("\n== the sentence-embedding model (all-MiniLM-L6-v2) on the CPU");
    crate::model::fetch()?;
    let model = crate::model::model_dir();
    let one_thread = [("RAYON_NUM_THREADS", std::ffi::OsStr::new("1"))];
    for env in [&one_thread[..], &[]] {
        run_example(
            "tracesift-embed",
            "speed",
            &[model.as_os_str()],
            env,
            "embedding",
        )?;
    }
    // PyTorch on the same text and machine (scripts/embed_speed_torch.py).
    let python = crate::python::torch_python()?;
    let status = Command::new(python)
        .arg("scripts/embed_speed_torch.py")
        .arg(&model)
        .current_dir(crate::test::workspace_root())
        .status()
        .context("cannot start the PyTorch benchmark")?;
    if !status.success() {
        anyhow::bail!("the PyTorch benchmark failed with {status}");
    }
    Ok(())
}

/// `semantic` in the tab: milliseconds a 256-word-piece text on the scoring worker and its
/// helpers, then on WebGPU (tests/e2e/bench-embedding.mjs, on the release build
/// `bench_app` made).
fn bench_tab_embedding() -> anyhow::Result<()> {
    println!("\n== the sentence-embedding model in the tab (release build, headless Chromium)");
    // On the CPU (the scoring worker and its helpers), then on WebGPU: 18 texts, 16 in the
    // first submission and 2 timed after it (SwiftShader, a CPU, takes seconds a text).
    for extra in [&[][..], &["18", "--webgpu"]] {
        let status = Command::new("node")
            .arg("tests/e2e/bench-embedding.mjs")
            .args(extra)
            .current_dir(crate::test::workspace_root())
            .status()
            .context("cannot start node")?;
        if !status.success() {
            anyhow::bail!("the embedding benchmark in the tab failed with {status}");
        }
    }
    Ok(())
}

/// Traces in the file the linked views are timed on.
const INTERACTION_TRACES: u64 = 100_000;

/// The app's linked views on 100k traces: the time from each input event (a cut-off
/// dragged, a bar or a class clicked, the scatter brushed) to the frame that shows it,
/// and the longest main-thread task meanwhile (tests/e2e/bench-interaction.mjs).
fn bench_interaction(directory: &Path) -> anyhow::Result<()> {
    println!("\n== the app's linked views on {INTERACTION_TRACES} traces");
    let options = GenOptions {
        tokens_per_trace: 40,
        ..GenOptions::default()
    };
    let per_question = 1 + u64::from(options.samples_per_question);
    let options = GenOptions {
        amount: GenAmount::Questions(INTERACTION_TRACES.div_ceil(per_question)),
        ..options
    };
    let input = directory.join("interaction-100k.jsonl");
    generate::write_file(&options, &input, false)?;
    let status = Command::new("node")
        .arg("tests/e2e/bench-interaction.mjs")
        .arg(&input)
        .current_dir(crate::test::workspace_root())
        .status()
        .context("cannot start node")?;
    fs::remove_file(&input).with_context(|| format!("cannot delete {}", input.display()))?;
    if !status.success() {
        anyhow::bail!("the interaction benchmark failed with {status}");
    }
    Ok(())
}

/// `Ok(None)` means `--help` was asked for.
fn parse_args(args: &[String]) -> anyhow::Result<Option<BenchArgs>> {
    let mut parsed = BenchArgs {
        sizes_megabytes: vec![100.0, 1000.0],
        keep_file: false,
        edge_cases: false,
        directory: None,
    };
    let mut remaining = args.iter();
    while let Some(flag) = remaining.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--keep-file" => parsed.keep_file = true,
            "--edge-cases" => parsed.edge_cases = true,
            "--size-mb" => {
                let text = remaining
                    .next()
                    .with_context(|| format!("--size-mb needs a value\n\n{USAGE}"))?;
                parsed.sizes_megabytes = Vec::new();
                for part in text.split(',') {
                    let size: f64 = part
                        .trim()
                        .parse()
                        .with_context(|| format!("--size-mb: `{part}` is not a number"))?;
                    if !(size.is_finite() && size > 0.0) {
                        bail!("--size-mb must be positive numbers, got {text}");
                    }
                    parsed.sizes_megabytes.push(size);
                }
            }
            "--dir" => {
                let text = remaining
                    .next()
                    .with_context(|| format!("--dir needs a value\n\n{USAGE}"))?;
                parsed.directory = Some(PathBuf::from(text));
            }
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    Ok(Some(parsed))
}

/// The workspace root is the parent of this crate's manifest directory, wherever cargo
/// was started from.
fn workspace_root() -> anyhow::Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask is expected to live one level below the workspace root")
}

fn target_directory(workspace_root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(configured) => workspace_root.join(configured),
        None => workspace_root.join("target"),
    }
}

/// Benchmark numbers mean little without the CPU they came from.
fn describe_machine() -> String {
    let cpu_count = std::thread::available_parallelism()
        .map(|count| count.get().to_string())
        .unwrap_or_else(|_| "?".to_owned());
    let cpu_model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|cpuinfo| {
            cpuinfo.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                matches!(key.trim(), "model name" | "Model" | "cpu model")
                    .then(|| value.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU model".to_owned());
    format!("nproc {cpu_count}, {cpu_model}")
}

fn build_release_cli(workspace_root: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let build_args = ["build", "--release", "--bin", "tracesift"];
    println!("$ {cargo} {}", build_args.join(" "));
    let status = Command::new(&cargo)
        .args(build_args)
        .current_dir(workspace_root)
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", build_args.join(" "));
    }
    let binary = target_directory(workspace_root)
        .join("release")
        .join(format!("tracesift{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        bail!("the build succeeded but {} is missing", binary.display());
    }
    Ok(binary)
}

/// Every generator parameter is in the name, so a kept file is only reused when it is
/// exactly what would be generated now.
fn cached_file_name(size_megabytes: f64, options: &GenOptions) -> String {
    format!(
        "synthetic-{size_megabytes}mb-seed{}-{}samples-{}tokens-top{}-labels{}.jsonl",
        options.seed,
        options.samples_per_question,
        options.tokens_per_trace,
        options.top_k,
        options.labelled_question_fraction,
    )
}

/// Generates the input unless a kept one exists. Returns the trace count when it generated.
fn prepare_input(options: &GenOptions, input_path: &Path) -> anyhow::Result<Option<u64>> {
    if input_path.is_file() {
        println!("reusing {}", input_path.display());
        return Ok(None);
    }
    // Written under another name first, so an interrupted run never leaves a truncated file
    // that a later run would take for a finished one.
    let partial_path = input_path.with_extension("jsonl.partial");
    println!("generating {} ...", input_path.display());
    let started = Instant::now();
    let stats = generate::write_file(options, &partial_path, false)?;
    let seconds = started.elapsed().as_secs_f64();
    fs::rename(&partial_path, input_path).with_context(|| {
        format!(
            "cannot rename {} to {}",
            partial_path.display(),
            input_path.display()
        )
    })?;
    println!(
        "generated {} questions, {} traces, {:.1} MB in {seconds:.2} s ({:.0} MB/s)",
        stats.questions,
        stats.traces,
        stats.bytes as f64 / BYTES_PER_MEGABYTE,
        stats.bytes as f64 / BYTES_PER_MEGABYTE / seconds.max(1e-9),
    );
    Ok(Some(stats.traces))
}

/// Wall time and peak resident memory of one child process.
#[derive(Debug, Clone, Copy)]
struct Measurement {
    seconds: f64,
    /// `None` where /proc is unavailable (not Linux) or the run was too short to sample.
    peak_rss_bytes: Option<u64>,
}

struct Measurements {
    /// `score --threads 1`, repeated.
    score: Vec<Measurement>,
    /// `score` on every core.
    score_all_cores: Measurement,
    filter: Measurement,
    eval: Measurement,
}

fn run_benchmarks(
    tracesift: &Path,
    input_path: &Path,
    directory: &Path,
) -> anyhow::Result<Measurements> {
    let input = input_path.as_os_str().to_string_lossy().into_owned();
    let null_device = if cfg!(windows) { "NUL" } else { "/dev/null" };
    let report_path = directory.join("report.json");
    let report = report_path.to_string_lossy().into_owned();
    let eval_output = directory.join("eval.json");
    let eval_out = eval_output.to_string_lossy().into_owned();

    let mut score = Vec::with_capacity(SCORE_REPETITIONS);
    for repetition in 1..=SCORE_REPETITIONS {
        let measurement = measure(
            tracesift,
            &[
                "score",
                &input,
                "--threads",
                "1",
                "--out",
                null_device,
                "--report",
                &report,
            ],
            &directory.join("score.stderr.txt"),
        )?;
        println!(
            "score (one core) run {repetition}/{SCORE_REPETITIONS}: {:.3} s, peak RSS {}",
            measurement.seconds,
            format_megabytes(measurement.peak_rss_bytes)
        );
        score.push(measurement);
    }
    let score_all_cores = measure(
        tracesift,
        &["score", &input, "--out", null_device],
        &directory.join("score-all.stderr.txt"),
    )?;
    println!(
        "score (every core): {:.3} s, peak RSS {}",
        score_all_cores.seconds,
        format_megabytes(score_all_cores.peak_rss_bytes)
    );
    let filter = measure(
        tracesift,
        &[
            "filter",
            &input,
            "--metric",
            "cocoa_ppl",
            "--keep",
            "0.1",
            "--out",
            null_device,
        ],
        &directory.join("filter.stderr.txt"),
    )?;
    println!(
        "filter --metric cocoa_ppl --keep 0.1: {:.3} s, peak RSS {}",
        filter.seconds,
        format_megabytes(filter.peak_rss_bytes)
    );
    let eval = measure(
        tracesift,
        &["eval", &input, "--out", &eval_out],
        &directory.join("eval.stderr.txt"),
    )?;
    println!(
        "eval: {:.3} s, peak RSS {} (output in {})",
        eval.seconds,
        format_megabytes(eval.peak_rss_bytes),
        eval_output.display()
    );
    Ok(Measurements {
        score,
        score_all_cores,
        filter,
        eval,
    })
}

/// Runs `program args`, with stderr saved to `stderr_path`, timing it and sampling its peak
/// RSS (`VmHWM`) from /proc every `RSS_POLL_INTERVAL` on a helper thread. `VmHWM` is a
/// high-water mark, so the last sample before exit is the peak; only growth in the final
/// few milliseconds can be missed, which matters for very short runs only.
fn measure(program: &Path, args: &[&str], stderr_path: &Path) -> anyhow::Result<Measurement> {
    println!("$ {} {}", program.display(), args.join(" "));
    let stderr_file = File::create(stderr_path)
        .with_context(|| format!("cannot create {}", stderr_path.display()))?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr_file)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let status_path = PathBuf::from(format!("/proc/{}/status", child.id()));
    let finished = Arc::new(AtomicBool::new(false));
    let poller = {
        let finished = Arc::clone(&finished);
        std::thread::spawn(move || {
            let mut peak_kib: Option<u64> = None;
            while !finished.load(Ordering::Acquire) {
                if let Some(kib) = read_peak_rss_kib(&status_path) {
                    peak_kib = Some(peak_kib.map_or(kib, |peak| peak.max(kib)));
                }
                std::thread::sleep(RSS_POLL_INTERVAL);
            }
            peak_kib
        })
    };
    // Waiting on this thread (not polling try_wait) keeps the wall time exact. Once the
    // child is reaped its pid could in theory be reused before the poller stops, but the
    // window is microseconds and a zombie has no VmHWM line, so stale reads are not a concern.
    let wait_result = child.wait();
    let seconds = started.elapsed().as_secs_f64();
    finished.store(true, Ordering::Release);
    let peak_kib = poller.join().unwrap_or_default();
    let status = wait_result.with_context(|| format!("cannot wait for {}", program.display()))?;
    if !status.success() {
        let stderr_text = fs::read_to_string(stderr_path).unwrap_or_default();
        let tail: Vec<&str> = stderr_text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "`{} {}` failed ({status}); its stderr ends with:\n{}",
            program.display(),
            args.join(" "),
            tail.join("\n")
        );
    }
    report_stderr(stderr_path);
    Ok(Measurement {
        seconds,
        peak_rss_bytes: peak_kib.map(|kib| kib * 1024),
    })
}

/// Skipped lines and warnings go to stderr; show a few so a bad benchmark is noticed.
fn report_stderr(stderr_path: &Path) {
    let Ok(stderr_text) = fs::read_to_string(stderr_path) else {
        return;
    };
    let line_count = stderr_text.lines().count();
    if line_count == 0 {
        return;
    }
    println!(
        "  note: {line_count} line(s) on stderr (all in {}):",
        stderr_path.display()
    );
    for line in stderr_text.lines().take(5) {
        println!("    {line}");
    }
}

fn read_peak_rss_kib(status_path: &Path) -> Option<u64> {
    let status = fs::read_to_string(status_path).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The few numbers of `--report` that the table shows. Read with plain string search
/// because xtask has no JSON dependency and the report's top-level keys are fixed.
#[derive(Debug, Default)]
struct RunReport {
    lines: Option<u64>,
    traces: Option<u64>,
    questions: Option<u64>,
    skipped: Option<u64>,
}

impl RunReport {
    fn read(path: &Path) -> Self {
        let Ok(text) = fs::read_to_string(path) else {
            return Self::default();
        };
        Self {
            lines: json_unsigned_field(&text, "lines"),
            traces: json_unsigned_field(&text, "traces"),
            questions: json_unsigned_field(&text, "questions"),
            skipped: text
                .contains("\"skipped\"")
                .then(|| text.matches("\"reason\"").count() as u64),
        }
    }
}

fn json_unsigned_field(text: &str, key: &str) -> Option<u64> {
    let after_key = text.split_once(&format!("\"{key}\""))?.1;
    let after_colon = after_key.trim_start().strip_prefix(':')?.trim_start();
    let digits: String = after_colon
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn format_megabytes(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "n/a".to_owned(),
        |bytes| format!("{:.1} MB", bytes as f64 / BYTES_PER_MEGABYTE),
    )
}

fn format_optional(value: Option<u64>) -> String {
    value.map_or_else(|| "?".to_owned(), |value| value.to_string())
}

fn print_table(
    machine: &str,
    input_bytes: u64,
    traces: Option<u64>,
    report: &RunReport,
    measurements: &Measurements,
) {
    let megabytes = input_bytes as f64 / BYTES_PER_MEGABYTE;
    let mut score_seconds: Vec<f64> = measurements.score.iter().map(|m| m.seconds).collect();
    score_seconds.sort_by(f64::total_cmp);
    let best = score_seconds.first().copied().unwrap_or(f64::NAN);
    let median = score_seconds
        .get(score_seconds.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    let peak_rss = measurements
        .score
        .iter()
        .filter_map(|m| m.peak_rss_bytes)
        .max();
    let traces_per_second = traces.map_or_else(
        || "?".to_owned(),
        |traces| format!("{:.0}", traces as f64 / best),
    );
    let rss_share = peak_rss.map_or_else(
        || "n/a".to_owned(),
        |rss| format!("{:.1} %", 100.0 * rss as f64 / input_bytes.max(1) as f64),
    );

    println!();
    println!("== tracesift bench ({machine}; 1 MB = 10^6 bytes)");
    println!(
        "input: {megabytes:.1} MB canonical JSONL, {} traces, {} questions, {} lines read, {} skipped",
        format_optional(traces),
        format_optional(report.questions),
        format_optional(report.lines),
        format_optional(report.skipped),
    );
    println!(
        "{:<38} {:>8} {:>8} {:>8} {:>10} {:>12} {:>10}",
        "command", "best s", "median s", "MB/s", "traces/s", "peak RSS MB", "RSS/file"
    );
    println!(
        "{:<38} {:>8.3} {:>8.3} {:>8.1} {:>10} {:>12} {:>10}",
        format!("score, one core (best of {SCORE_REPETITIONS})"),
        best,
        median,
        megabytes / best,
        traces_per_second,
        format_megabytes(peak_rss).trim_end_matches(" MB"),
        rss_share,
    );
    for (name, measurement) in [
        ("score, every core", &measurements.score_all_cores),
        ("filter --metric cocoa_ppl --keep 0.1", &measurements.filter),
        ("eval", &measurements.eval),
    ] {
        println!(
            "{:<38} {:>8.3} {:>8} {:>8.1} {:>10} {:>12} {:>10}",
            name,
            measurement.seconds,
            "-",
            megabytes / measurement.seconds,
            traces.map_or_else(
                || "?".to_owned(),
                |traces| format!("{:.0}", traces as f64 / measurement.seconds)
            ),
            format_megabytes(measurement.peak_rss_bytes).trim_end_matches(" MB"),
            measurement.peak_rss_bytes.map_or_else(
                || "n/a".to_owned(),
                |rss| format!("{:.1} %", 100.0 * rss as f64 / input_bytes.max(1) as f64)
            ),
        );
    }
    println!(
        "(peak RSS is sampled from /proc every {} ms and can under-read on very short runs)",
        RSS_POLL_INTERVAL.as_millis()
    );
}
