//! The `tracesift` binary as a user runs it: commands, flags, outputs and exit codes of
//! SPEC §10, on fixture files.

// Helpers in test crates may panic: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

fn tracesift(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracesift"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    // A process that rejects its arguments exits without reading stdin (broken pipe).
    let _ = pipe.write_all(stdin.unwrap_or_default());
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stderr: {}",
        stderr(output)
    );
}

/// A JSON file the command wrote (`--report`, `--out`).
fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn small() -> String {
    fixture("small.jsonl").to_string_lossy().into_owned()
}

#[test]
fn score_writes_one_row_per_trace_with_the_spec_fields() {
    let output = tracesift(&["score", &small()], None);
    assert_exit(&output, 0);
    let rows: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
    let first_line = stdout(&output).lines().next().unwrap().to_owned();
    // Field order as SPEC §10 lists it.
    let keys = [
        "trace_id",
        "question_id",
        "class",
        "greedy",
        "n_tokens",
        "invalid_tokens",
        "msp",
        "ppl",
        "mte",
        "consistency",
        "cocoa_msp",
        "cocoa_ppl",
        "cocoa_mte",
        // SPEC §5b, in its order.
        "conf_mean",
        "conf_tail",
        "conf_bottom10",
        "conf_lowest",
        "self_certainty",
        "answer_entropy",
        "eigv",
        "eccentricity",
        "kle",
        "semantic_density",
        "sentence_sar",
        "combo",
    ];
    assert_eq!(
        rows[0].as_object().unwrap().len(),
        keys.len(),
        "{first_line}"
    );
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| first_line.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{first_line}");
    assert_eq!(rows[0]["trace_id"], "q1-g");
    assert_eq!(rows[0]["msp"].as_f64().unwrap(), 0.6000000000000001);
    assert_eq!(rows[5]["class"], serde_json::Value::Null);
    // Skipped lines go to stderr with their line numbers.
    assert!(
        stderr(&output).contains("small.jsonl:6: skipped: not JSON"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("small.jsonl:8: skipped: `tokens` has 1 entries"));
}

#[test]
fn gzip_and_stdin_give_the_same_scores() {
    let plain = std::fs::read(fixture("small.jsonl")).unwrap();
    let expected = stdout(&tracesift(&["score", &small()], None));
    let dir = tempfile::tempdir().unwrap();
    let gz_path = dir.path().join("small.jsonl.gz");
    std::fs::write(&gz_path, gzip(&plain)).unwrap();
    assert_eq!(
        stdout(&tracesift(&["score", gz_path.to_str().unwrap()], None)),
        expected
    );
    assert_eq!(stdout(&tracesift(&["score", "-"], Some(&plain))), expected);
    assert_eq!(
        stdout(&tracesift(&["score", "-"], Some(&gzip(&plain)))),
        expected
    );
}

#[test]
fn report_counts_lines_traces_and_skips() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let output = tracesift(
        &[
            "score",
            &small(),
            "--report",
            report_path.to_str().unwrap(),
            "--out",
            "/dev/null",
        ],
        None,
    );
    assert_exit(&output, 0);
    let report = read_json(&report_path);
    assert_eq!(report["lines"], 8);
    assert_eq!(report["traces"], 6);
    assert_eq!(report["questions"], 2);
    assert_eq!(report["format"], "canonical");
    assert_eq!(report["classes"]["down"], 3);
    assert_eq!(report["classes"]["∅"], 1);
    assert_eq!(report["skipped"][0]["line"], 6);
    assert_eq!(report["skipped"][1]["line"], 8);
}

#[test]
fn exit_codes() {
    // 1: nothing usable.
    let junk = tracesift(&["score", "-"], Some(b"{\"hello\":1}\nnot json\n"));
    assert_exit(&junk, 1);
    assert!(
        stderr(&junk).contains("nothing usable in the input"),
        "{}",
        stderr(&junk)
    );
    assert_exit(&tracesift(&["score", "-"], Some(b"")), 1);
    // 2: bad arguments.
    for args in [
        &["filter", "x.jsonl", "--metric", "bogus"][..],
        &["filter", "x.jsonl", "--keep", "1.5"],
        &["filter", "x.jsonl", "--keep", "0.1", "--top", "3"],
        &["score", "x.jsonl", "--classes", "up"],
        &["score", "x.jsonl", "--answer-pattern", "("],
        &["score", "x.jsonl", "--format", "pdf"],
        &["score", "/nonexistent/file.jsonl"],
        &["score"],
        &["frobnicate"],
    ] {
        let mut full: Vec<&str> = args.to_vec();
        if full.get(1) == Some(&"x.jsonl") {
            full[1] = "-";
        }
        let output = tracesift(&full, Some(b"{\"question_id\":1,\"answer\":\"up\"}\n"));
        assert_exit(&output, 2);
    }
}

#[test]
fn filter_exports_the_kept_traces_in_input_order() {
    let output = tracesift(
        &["filter", &small(), "--metric", "cocoa_ppl", "--keep", "0.5"],
        None,
    );
    assert_exit(&output, 0);
    let lines: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    // up: q1-g (0.1) beats q1-s1 (0.25); down: q2-g (0.025), q2-s1 (0.2) beat q1-s2 (1.0).
    assert_eq!(lines.len(), 3);
    // Canonical records pass through byte for byte (unknown fields too), scores added last.
    let source = std::fs::read_to_string(fixture("small.jsonl")).unwrap();
    let first_source = source.lines().next().unwrap();
    assert!(
        lines[0].starts_with(&first_source[..first_source.len() - 1]),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("\"extra\":{\"k\":1},\"scores\":{\"class\":\"up\""));
    let ids: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["trace_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["q1-g", "q2-g", "q2-s1"]);
    assert!(stderr(&output).contains("kept 3 of 6 traces"));
}

#[test]
fn export_formats() {
    let run = |format: &str| {
        let output = tracesift(
            &[
                "filter",
                &small(),
                "--top",
                "1",
                "--scope",
                "global",
                "--export",
                format,
                "--system-prompt",
                "Be brief.",
                "--allow-empty-prompt",
            ],
            None,
        );
        assert_exit(&output, 0);
        stdout(&output)
    };
    // Global top 1 by cocoa_ppl is q2-g (0.025), which has no prompt and only an answer
    // (written because empty prompts are allowed; tests/requests.rs has the refusal).
    assert_eq!(
        run("openai"),
        "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"\"},{\"role\":\"assistant\",\"content\":\"Down\"}]}\n"
    );
    assert_eq!(run("trl"), "{\"prompt\":\"\",\"completion\":\"Down\"}\n");
    assert_eq!(
        run("sharegpt"),
        "{\"conversations\":[{\"from\":\"system\",\"value\":\"Be brief.\"},{\"from\":\"human\",\"value\":\"\"},{\"from\":\"gpt\",\"value\":\"Down\"}]}\n"
    );
    assert_eq!(
        run("alpaca"),
        "{\"instruction\":\"\",\"input\":\"\",\"output\":\"Down\",\"system\":\"Be brief.\"}\n"
    );
    let csv = run("csv");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 7, "header + every trace");
    assert!(rows[0].starts_with("trace_id,question_id,class,"));
    assert_eq!(rows.iter().filter(|r| r.ends_with(",true")).count(), 1);
    assert!(
        rows.iter().any(|r| r
            .starts_with("q2-g,q2,down,true,1,0,0.05,0.05,,0.5,0.5,0.025,0.025,,")
            && r.ends_with(",true")),
        "{csv}"
    );
}

#[test]
fn filter_from_gzip_and_stdin_reads_records_back() {
    let plain = std::fs::read(fixture("small.jsonl")).unwrap();
    let expected = stdout(&tracesift(&["filter", &small(), "--keep", "1"], None));
    assert_eq!(expected.lines().count(), 5, "every answered, scored trace");
    assert_eq!(
        stdout(&tracesift(
            &["filter", "-", "--keep", "1"],
            Some(&gzip(&plain))
        )),
        expected
    );
    assert_eq!(
        stdout(&tracesift(&["filter", "-", "--keep", "1"], Some(&plain))),
        expected
    );
}

#[test]
fn config_file_with_flag_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("settings.json");
    std::fs::write(
        &config,
        r#"{"metric":"msp","keep":null,"top":1,"scope":"global","export":"trl","allow_empty_prompt":true}"#,
    )
    .unwrap();
    let from_config = tracesift(
        &["filter", &small(), "--config", config.to_str().unwrap()],
        None,
    );
    assert_exit(&from_config, 0);
    // Global top 1 by msp: q2-g (0.05).
    assert_eq!(
        stdout(&from_config),
        "{\"prompt\":\"\",\"completion\":\"Down\"}\n"
    );
    let overridden = tracesift(
        &[
            "filter",
            &small(),
            "--config",
            config.to_str().unwrap(),
            "--top",
            "2",
            "--export",
            "canonical",
        ],
        None,
    );
    assert_eq!(stdout(&overridden).lines().count(), 2);
    std::fs::write(&config, r#"{"metrc":"msp"}"#).unwrap();
    let typo = tracesift(
        &["score", &small(), "--config", config.to_str().unwrap()],
        None,
    );
    assert_exit(&typo, 2);
    assert!(
        stderr(&typo).contains("unknown field `metrc`"),
        "{}",
        stderr(&typo)
    );
}

#[test]
fn random_baseline_matches_the_kept_size() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("random.jsonl");
    let args = |seed: &str| {
        vec![
            "filter".to_owned(),
            small(),
            "--keep".into(),
            "0.5".into(),
            "--random-baseline".into(),
            baseline.to_string_lossy().into_owned(),
            "--seed".into(),
            seed.into(),
        ]
    };
    let run = |seed: &str| {
        let args = args(seed);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_exit(&tracesift(&refs, None), 0);
        std::fs::read_to_string(&baseline).unwrap()
    };
    let first = run("7");
    assert_eq!(first.lines().count(), 3);
    assert_eq!(run("7"), first, "same seed, same sample");
}

#[test]
fn eval_reports_every_metric() {
    let output = tracesift(&["eval", &small()], None);
    assert_exit(&output, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    // Labelled traces: all 6; right: q1-g, q1-s1, q2-g, q2-s1 → accuracy 4/6.
    assert_eq!(report["n"], 6);
    assert!((report["accuracy"].as_f64().unwrap() - 4.0 / 6.0).abs() < 1e-12);
    let table: Vec<&str> = tracesift_core::metrics::Metric::ALL
        .iter()
        .map(|metric| metric.name())
        .collect();
    assert_eq!(report["metrics"].as_object().unwrap().len(), table.len());
    let text = stdout(&output);
    let positions: Vec<usize> = table
        .iter()
        .map(|name| text.find(&format!("\"{name}\":{{")).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "SPEC §7's order: {text}"
    );
    for &metric in &table {
        let entry = &report["metrics"][metric];
        assert_eq!(
            entry["selective_accuracy"].as_array().unwrap().len(),
            20,
            "{metric}"
        );
    }
    // cocoa_ppl ranks the two errors (q2-s2 2.0, q1-s2 1.0) above every right answer.
    assert_eq!(report["metrics"]["cocoa_ppl"]["auroc"], 1.0);
    assert_eq!(report["metrics"]["cocoa_ppl"]["prr"], 1.0);
    // mte exists only for q1-g, which is right: no errors → AUROC is null.
    assert_eq!(report["metrics"]["mte"]["n"], 1);
    assert_eq!(report["metrics"]["mte"]["auroc"], serde_json::Value::Null);
    // Which signal fits: every metric ranked, best first, with bootstrap intervals.
    let ranking = &report["ranking"];
    assert_eq!(ranking["n"], 6);
    assert_eq!(ranking["resamples"], 1000);
    let ranked = ranking["metrics"].as_array().unwrap();
    assert_eq!(ranked.len(), table.len());
    assert_eq!(ranking["best"], ranked[0]["metric"]);
    assert_eq!(ranked[0]["prr"], 1.0);
    assert!(ranked[0]["prr_ci"]["low"].as_f64().unwrap() <= 1.0);
    assert!(stderr(&output).contains("best on the 6 labelled traces: "));
    // The same seed gives the same intervals; another seed other ones.
    let again = tracesift(&["eval", &small(), "--seed", "0"], None);
    assert_eq!(stdout(&again), stdout(&output));
    // How the metrics agree, with or without labels: a matrix over the table's metrics.
    let agreement = &report["agreement"];
    assert_eq!(agreement["metrics"].as_array().unwrap().len(), table.len());
    assert_eq!(agreement["spearman"][1][1], 1.0, "ppl with itself");
    let unlabelled = std::fs::read_to_string(fixture("small.jsonl"))
        .unwrap()
        .replace(",\"label\":\"up\"", "")
        .replace(",\"label\":\"down\"", "");
    let output = tracesift(
        &["eval", "-", "--resamples", "10"],
        Some(unlabelled.as_bytes()),
    );
    assert_exit(&output, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["n"], 0);
    assert_eq!(report["ranking"], serde_json::Value::Null);
    assert_eq!(
        report["agreement"]["spearman"][0][1],
        agreement["spearman"][0][1]
    );
}

#[test]
fn multi_file_reports_name_the_file_of_every_skipped_line() {
    let dir = tempfile::tempdir().unwrap();
    let second = dir.path().join("second.jsonl");
    std::fs::write(
        &second,
        "{\"question_id\":\"q9\",\"answer\":\"up\"}\nbroken\n",
    )
    .unwrap();
    let report_path = dir.path().join("report.json");
    let output = tracesift(
        &[
            "score",
            &small(),
            second.to_str().unwrap(),
            "--report",
            report_path.to_str().unwrap(),
            "--out",
            "/dev/null",
        ],
        None,
    );
    assert_exit(&output, 0);
    let report = read_json(&report_path);
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 3);
    assert!(
        skipped[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("small.jsonl")
    );
    assert_eq!(skipped[2]["file"], second.to_str().unwrap());
    assert_eq!(skipped[2]["line"], 2);
    assert_eq!(report["traces"], 7);
}

/// Questions of 1 to 9 samples with top-k log-probs and texts sharing words.
fn sampled_file() -> String {
    let words = ["gene", "up", "down", "stress", "the", "cell", "so", "none"];
    let mut state = 9u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = String::new();
    for question in 0..30 {
        for sample in 0..(question % 9 + 1) {
            let n = 5 + (next() * 200.0) as usize;
            let logprobs: Vec<f64> = (0..n).map(|_| -4.0 * next()).collect();
            let top: Vec<String> = logprobs
                .iter()
                .map(|v| format!("[{v:.5},{:.5},{:.5}]", v - 1.0 - next(), v - 3.0))
                .collect();
            let text: Vec<&str> = (0..n).map(|_| words[(next() * 8.0) as usize]).collect();
            let answer = ["up", "down", "none"][(next() * 3.0) as usize];
            let logprobs: Vec<String> = logprobs.iter().map(|v| format!("{v:.5}")).collect();
            out.push_str(&format!(
                "{{\"question_id\":\"q{question}\",\"greedy\":{},\"text\":\"{} Final answer: {answer}\",\"logprobs\":[{}],\"top_logprobs\":[{}]}}\n",
                sample == 0,
                text.join(" "),
                logprobs.join(","),
                top.join(",")
            ));
        }
    }
    out
}

#[test]
fn gpu_backend_agrees_with_the_cpu_and_names_its_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sampled.jsonl");
    std::fs::write(&input, sampled_file()).unwrap();
    let input = input.to_string_lossy().into_owned();
    let run = |backend: &str| {
        let report = dir.path().join(format!("report-{backend}.json"));
        let output = tracesift(
            &[
                "score",
                &input,
                "--sim",
                "rouge_l",
                "--backend",
                backend,
                "--report",
                report.to_str().unwrap(),
            ],
            None,
        );
        assert_exit(&output, 0);
        let report = read_json(&report);
        let rows: Vec<serde_json::Value> = stdout(&output)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        (report["backend"].as_str().unwrap().to_owned(), rows)
    };
    let (cpu_backend, cpu) = run("cpu");
    let (gpu_backend, gpu) = run("gpu");
    assert_eq!(cpu_backend, "cpu");
    assert!(gpu_backend.starts_with("gpu: "), "{gpu_backend}");
    assert!(gpu_backend.len() > "gpu: ".len());
    assert_eq!(cpu.len(), gpu.len());
    assert!(cpu.len() > 100);
    for (c, g) in cpu.iter().zip(&gpu) {
        for (key, c_value) in c.as_object().unwrap() {
            let g_value = &g[key];
            match (c_value.as_f64(), g_value.as_f64()) {
                (Some(a), Some(b)) if key != "n_tokens" && key != "invalid_tokens" => {
                    assert!(
                        (a - b).abs() <= 1e-4 * a.abs().max(1e-3),
                        "{key}: {a} vs {b}"
                    );
                }
                _ => assert_eq!(c_value, g_value, "{key}"),
            }
        }
        // ROUGE-L from exact LCS lengths: the same number, not merely close.
        assert_eq!(c["consistency"], g["consistency"]);
    }
    // The same traces are kept, whichever backend scored them.
    let kept = |backend: &str| {
        let output = tracesift(
            &[
                "filter",
                &input,
                "--metric",
                "cocoa_mte",
                "--keep",
                "0.3",
                "--sim",
                "rouge_l",
                "--export",
                "trl",
                "--allow-empty-prompt",
                "--backend",
                backend,
            ],
            None,
        );
        assert_exit(&output, 0);
        stdout(&output)
    };
    let cpu_kept = kept("cpu");
    assert!(!cpu_kept.is_empty());
    assert_eq!(cpu_kept, kept("gpu"));
}

#[test]
fn gpu_backend_without_a_driver_is_a_clear_argument_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_tracesift"))
        .args(["score", &small(), "--backend", "gpu"])
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("--backend gpu"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("--backend cpu"),
        "{}",
        stderr(&output)
    );
    // `auto` does not need one.
    let auto = Command::new(env!("CARGO_BIN_EXE_tracesift"))
        .args(["score", &small(), "--backend", "auto", "--sim", "rouge_l"])
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    assert_exit(&auto, 0);
}

#[test]
fn a_large_file_parsed_on_two_threads_gives_the_same_output() {
    // Over the 64 MiB above which plain JSONL is split into parts: lines with and without
    // trace ids, a broken line in the middle and one without a final newline.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let logprobs = vec!["-0.25"; 2_000].join(",");
    let mut written = 0usize;
    let mut line_idx = 0usize;
    while written < 70 << 20 {
        let line = if line_idx == 3_000 {
            "{\"question_id\": broken\n".to_owned()
        } else {
            let trace_id = if line_idx.is_multiple_of(3) {
                String::new()
            } else {
                format!("\"trace_id\":\"t{line_idx}\",")
            };
            format!(
                "{{\"question_id\":\"q{}\",{trace_id}\"answer\":\"{}\",\"logprobs\":[{logprobs},-{}.5]}}\n",
                line_idx / 7,
                ["up", "down", "none"][line_idx % 3],
                line_idx % 5
            )
        };
        file.write_all(line.as_bytes()).unwrap();
        written += line.len();
        line_idx += 1;
    }
    file.write_all(b"{\"question_id\":\"last\",\"answer\":\"up\",\"logprobs\":[-1]}")
        .unwrap();
    drop(file);
    let path = path.to_string_lossy().into_owned();
    let run = |threads: &str| {
        let report = dir.path().join(format!("report-{threads}.json"));
        let output = tracesift(
            &[
                "score",
                &path,
                "--threads",
                threads,
                "--report",
                report.to_str().unwrap(),
            ],
            None,
        );
        assert_exit(&output, 0);
        (stdout(&output), std::fs::read_to_string(report).unwrap())
    };
    let (one_rows, one_report) = run("1");
    let (two_rows, two_report) = run("2");
    assert_eq!(one_rows.lines().count(), line_idx);
    assert!(one_report.contains("\"line\": 3001"), "{one_report}");
    assert_eq!(two_report, one_report);
    assert!(two_rows == one_rows, "the rows differ");
}

/// The §5b columns of `score` on a hand-made file, checked against values worked out by
/// hand (DeepConf's windows, discrete semantic entropy, the answer graph's closed forms).
#[test]
fn score_rows_carry_the_signal_suite() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("signals.jsonl");
    // q1: two clusters (up, up, down); q2: one trace; every token's top list has two
    // entries whose mean is −(token index + 1).
    let line = |question: &str, id: &str, answer: &str, n_tokens: usize| {
        let logprobs: Vec<String> = (0..n_tokens).map(|_| "-0.5".to_owned()).collect();
        let top: Vec<String> = (0..n_tokens)
            .map(|idx| format!("[-{},-{}]", idx as f64 + 0.5, idx as f64 + 1.5))
            .collect();
        format!(
            "{{\"question_id\":\"{question}\",\"trace_id\":\"{id}\",\"answer\":\"{answer}\",\"logprobs\":[{}],\"top_logprobs\":[{}]}}\n",
            logprobs.join(","),
            top.join(",")
        )
    };
    let text = [
        line("q1", "a", "up", 4),
        line("q1", "b", "up", 2),
        line("q1", "c", "down", 3),
        line("q2", "d", "up", 1),
    ]
    .concat();
    std::fs::write(&input, text).unwrap();
    let rows = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec!["score", input.to_str().unwrap()];
        args.extend_from_slice(extra);
        let output = tracesift(&args, None);
        assert_exit(&output, 0);
        stdout(&output)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let close = |value: &serde_json::Value, expected: f64| {
        let value = value.as_f64().unwrap();
        assert!((value - expected).abs() < 1e-12, "{value} vs {expected}");
    };
    let default = rows(&[]);
    // Trace a: C = [1, 2, 3, 4]; the default window (2048) is longer than the trace.
    close(&default[0]["conf_mean"], 2.5);
    close(&default[0]["conf_tail"], 2.5);
    close(&default[0]["conf_lowest"], 2.5);
    // self-certainty: mean of C − ln 2.
    close(&default[0]["self_certainty"], 2.5 - 2f64.ln());
    // q1: p = 2/3, 1/3.
    let entropy = -(2.0f64 / 3.0 * (2.0f64 / 3.0).ln() + 1.0 / 3.0 * (1.0f64 / 3.0).ln());
    close(&default[0]["answer_entropy"], entropy);
    close(&default[0]["eigv"], 2.0);
    close(&default[0]["eccentricity"], (0.5f64 - 1.0 / 3.0).sqrt());
    close(&default[2]["eccentricity"], (1.0f64 - 1.0 / 3.0).sqrt());
    // q2 has one trace: no answer distribution, no graph.
    assert_eq!(default[3]["answer_entropy"], serde_json::Value::Null);
    assert_eq!(default[3]["eigv"], serde_json::Value::Null);
    close(&default[3]["conf_mean"], 1.0);
    // --window 2: trace a's windows are 1.5, 2.5, 3.5 (b = 1); its tail is the last two.
    let windowed = rows(&["--window", "2"]);
    close(&windowed[0]["conf_tail"], 3.5);
    close(&windowed[0]["conf_bottom10"], 1.5);
    close(&windowed[0]["conf_lowest"], 1.5);
    // --combine conf_mean alone: the percentile rank of −conf_mean over the 4 traces
    // (conf_mean a 2.5, b 1.5, c 2, d 1 → a is the most confident).
    let combined = rows(&["--combine", "conf_mean"]);
    let combos: Vec<f64> = combined
        .iter()
        .map(|row| row["combo"].as_f64().unwrap())
        .collect();
    assert_eq!(combos, [0.0, 2.0 / 3.0, 1.0 / 3.0, 1.0]);
    // The default combination needs cocoa_ppl, which q2's single trace lacks.
    assert_eq!(default[3]["combo"], serde_json::Value::Null);
    for bad in [
        &["--window", "0"][..],
        &["--window", "x"],
        &["--combine", "combo"],
        &["--combine", "bogus"],
        &["--combine", ""],
    ] {
        let mut args = vec!["score", input.to_str().unwrap()];
        args.extend_from_slice(bad);
        assert_exit(&tracesift(&args, None), 2);
    }
}

#[test]
fn filter_accepts_every_metric_and_ranks_by_its_direction() {
    let help = stdout(&tracesift(&["filter", "--help"], None));
    for metric in tracesift_core::metrics::Metric::ALL {
        assert!(help.contains(metric.name()), "--help names {metric}");
        let output = tracesift(
            &[
                "filter",
                &small(),
                "--metric",
                metric.name(),
                "--keep",
                "1",
                "--export",
                "csv",
            ],
            None,
        );
        assert_exit(&output, 0);
    }
    // conf_mean is a confidence: the global top 1 is the trace with the highest value
    // (q1-g, the only trace with top-k lists: C = 1.25, 0.95, 0.85, mean 1.0167); a
    // threshold keeps ≥.
    let top = tracesift(
        &[
            "filter",
            &small(),
            "--metric",
            "conf_mean",
            "--top",
            "1",
            "--scope",
            "global",
            "--export",
            "trl",
        ],
        None,
    );
    assert_exit(&top, 0);
    assert!(stdout(&top).contains("ER stress rises"), "{}", stdout(&top));
    for (threshold, kept) in [("1.0", 1), ("1.05", 0)] {
        let output = tracesift(
            &[
                "filter",
                &small(),
                "--metric",
                "conf_mean",
                "--threshold",
                threshold,
                "--scope",
                "global",
                "--export",
                "csv",
            ],
            None,
        );
        assert_exit(&output, 0);
        let n_kept = stdout(&output)
            .lines()
            .filter(|row| row.ends_with(",true"))
            .count();
        assert_eq!(n_kept, kept, "threshold {threshold}");
    }
}

/// The embedding model fetched by `cargo xtask model` (`cargo xtask test` fetches it first).
fn model_dir() -> PathBuf {
    std::env::var_os("TRACESIFT_MODEL_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/model/all-MiniLM-L6-v2"),
        PathBuf::from,
    )
}

/// The texts of tests/data/embed/sentence-transformers.json (empty, unicode, longer than
/// the model reads) as three questions of four traces: once as text only, once with the
/// embedding sentence-transformers computed for the given part.
fn semantic_fixtures(dir: &Path, part: &str) -> (PathBuf, PathBuf) {
    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture("embed/sentence-transformers.json")).unwrap(),
    )
    .unwrap();
    let (mut texts, mut embedded) = (String::new(), String::new());
    for (idx, text) in reference["texts"].as_array().unwrap().iter().enumerate() {
        let mut record = serde_json::json!({
            "question_id": format!("q{}", idx / 4),
            "trace_id": format!("t{idx}"),
            "text": text["text"],
            "answer": "up",
        });
        texts.push_str(&format!("{record}\n"));
        // A text the model reads whole has one embedding for both parts.
        let key = if part == "last" && !text["last_256"].is_null() {
            "last_256"
        } else {
            "first_256"
        };
        record["embedding"] = text[key].clone();
        embedded.push_str(&format!("{record}\n"));
    }
    let (a, b) = (dir.join("texts.jsonl"), dir.join("embedded.jsonl"));
    std::fs::write(&a, texts).unwrap();
    std::fs::write(&b, embedded).unwrap();
    (a, b)
}

fn score_rows(output: &Output) -> Vec<serde_json::Value> {
    assert_exit(output, 0);
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Scores the fixture's texts with `--sim semantic --semantic-part part` and `extra`, and
/// checks the similarity-graph signals that need no log-probs (the fixture has none)
/// against those of sentence-transformers' embeddings, within `tolerance`.
fn assert_semantic_as_sentence_transformers(
    dir: &Path,
    part: &str,
    extra: &[&str],
    tolerance: f64,
) {
    let (texts, embedded) = semantic_fixtures(dir, part);
    let model = model_dir();
    let mut args = vec!["score", texts.to_str().unwrap(), "--sim", "semantic"];
    args.extend([
        "--semantic-part",
        part,
        "--model-dir",
        model.to_str().unwrap(),
    ]);
    args.extend(extra);
    let ours = score_rows(&tracesift(&args, None));
    let theirs = score_rows(&tracesift(
        &["score", embedded.to_str().unwrap(), "--sim", "embedding"],
        None,
    ));
    assert_eq!(ours.len(), 12);
    for (a, b) in ours.iter().zip(&theirs) {
        for metric in ["consistency", "eigv", "eccentricity", "kle"] {
            let (x, y) = (a[metric].as_f64().unwrap(), b[metric].as_f64().unwrap());
            assert!(
                (x - y).abs() <= tolerance,
                "{part} {extra:?}: {} {metric}: {x} vs sentence-transformers' {y}",
                a["trace_id"]
            );
        }
    }
}

#[test]
fn semantic_scores_as_sentence_transformers_embeddings_do() {
    let dir = tempfile::tempdir().unwrap();
    for part in ["first", "last"] {
        assert_semantic_as_sentence_transformers(dir.path(), part, &[], 1e-5);
    }
}

#[test]
fn semantic_on_the_gpu_backend_scores_as_sentence_transformers_embeddings_do() {
    // `--backend gpu` runs the encoder's WGSL kernels (on lavapipe in CI).
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let gpu = ["--backend", "gpu", "--report", report.to_str().unwrap()];
    assert_semantic_as_sentence_transformers(dir.path(), "last", &gpu, 1e-4);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let backend = report["backend"].as_str().unwrap();
    assert!(backend.starts_with("gpu: "), "{backend}");
}

#[test]
fn a_semantic_export_carries_its_embeddings_for_an_embedding_run() {
    let dir = tempfile::tempdir().unwrap();
    let (texts, _) = semantic_fixtures(dir.path(), "first");
    let model = model_dir();
    let semantic = ["--sim", "semantic", "--model-dir", model.to_str().unwrap()];
    // Every trace, ranked by a metric every trace has (the fixture has no log-probs).
    let mut args = vec!["filter", texts.to_str().unwrap(), "--keep", "1"];
    args.extend(["--metric", "inconsistency"]);
    args.extend(["--scope", "global", "--export", "canonical"]);
    args.extend(semantic);
    let export = tracesift(&args, None);
    assert_exit(&export, 0);
    let mut args = vec!["score", texts.to_str().unwrap()];
    args.extend(semantic);
    let scored = score_rows(&tracesift(&args, None));
    let again = score_rows(&tracesift(
        &["score", "-", "--sim", "embedding"],
        Some(&export.stdout),
    ));
    assert_eq!(scored.len(), again.len());
    for (a, b) in scored.iter().zip(&again) {
        assert_eq!(a["consistency"], b["consistency"], "{}", a["trace_id"]);
        assert_eq!(a["kle"], b["kle"], "{}", a["trace_id"]);
    }
}

#[test]
fn semantic_without_the_model_says_where_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-model");
    let output = tracesift(
        &[
            "score",
            fixture("small.jsonl").to_str().unwrap(),
            "--sim",
            "semantic",
            "--model-dir",
            missing.to_str().unwrap(),
        ],
        None,
    );
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("cargo xtask model"),
        "{}",
        stderr(&output)
    );
    let bad_part = tracesift(
        &[
            "score",
            fixture("small.jsonl").to_str().unwrap(),
            "--semantic-part",
            "middle",
        ],
        None,
    );
    assert_exit(&bad_part, 2);
    assert!(
        stderr(&bad_part).contains("first|last"),
        "{}",
        stderr(&bad_part)
    );
}
