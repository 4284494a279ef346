"""tracesift in Python against the CLI: the same rows, kept traces and bytes, from every
kind of source; errors with line numbers."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import pytest

import tracesift
from conftest import DATA, cli_path, cli_rows, run_cli

FORMAT_FIXTURES = sorted(
    path
    for path in (DATA / "formats").iterdir()
    if path.suffix in (".jsonl", ".json", ".sse")
)
REAL_FIXTURES = sorted(
    path
    for path in (DATA / "real").rglob("*")
    if path.suffix in (".jsonl", ".json", ".sse") and not path.name.endswith(".expected.json")
)
CANONICAL = DATA / "signals.jsonl"


def rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


@pytest.mark.filterwarnings("ignore::tracesift.TracesiftWarning")
@pytest.mark.parametrize("path", FORMAT_FIXTURES + REAL_FIXTURES, ids=lambda p: str(p.relative_to(DATA)))
def test_score_equals_the_cli_on_every_fixture(path: Path) -> None:
    cli = subprocess.run([cli_path(), "score", str(path)], capture_output=True)
    if cli.returncode == 1:
        # Nothing usable: the CLI exits 1, Python raises with the same reasons.
        reason = cli.stderr.decode().splitlines()[0].split("skipped: ", 1)[1]
        with pytest.raises(ValueError, match="nothing usable") as raised:
            tracesift.score(str(path))
        assert reason in str(raised.value)
        return
    table = tracesift.score(str(path))
    assert rows(table) == [json.loads(line) for line in cli.stdout.splitlines()]
    assert table.column_names[:6] == ["trace_id", "question_id", "class", "greedy", "n_tokens", "invalid_tokens"]


@pytest.mark.parametrize("sim", ["answer", "rouge_l", "embedding", "semantic"])
def test_settings_reach_the_core(sim: str) -> None:
    table = tracesift.score(str(CANONICAL), sim=sim, window=2, combine="ppl,conf_tail")
    expected = cli_rows("score", str(CANONICAL), "--sim", sim, "--window", "2", "--combine", "ppl,conf_tail")
    assert rows(table) == expected
    assert rows(table) != rows(tracesift.score(str(CANONICAL), sim=sim)) or sim == "answer"


def test_columns_follow_the_metric_table() -> None:
    table = tracesift.score(str(CANONICAL))
    names = tracesift.metric_names()
    assert names[0] == "msp" and names[-1] == "combo"
    expected = [("consistency" if name == "inconsistency" else name) for name in names]
    assert table.column_names[6:] == expected


def _sources(tmp_path: Path) -> dict[str, object]:
    raw = CANONICAL.read_bytes()
    arrow = pa_json.read_json(io.BytesIO(raw))
    gz = tmp_path / "traces.jsonl.gz"
    gz.write_bytes(gzip.compress(raw))
    parquet = tmp_path / "traces.parquet"
    pq.write_table(arrow, parquet)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    lines = raw.splitlines(keepends=True)
    first.write_bytes(b"".join(lines[:10]))
    second.write_bytes(b"".join(lines[10:]))
    return {
        "path": str(CANONICAL),
        "pathlib": CANONICAL,
        "list": [str(first), str(second)],
        "gzip": str(gz),
        "parquet": str(parquet),
        "parquet_bytes": parquet.read_bytes(),
        "bytes": raw,
        "arrow": arrow,
        "pandas": arrow.to_pandas(),
        "polars": pl.from_arrow(arrow),
    }


@pytest.mark.parametrize(
    "kind",
    ["path", "pathlib", "list", "gzip", "parquet", "parquet_bytes", "bytes", "arrow", "pandas", "polars"],
)
def test_every_input_kind_gives_the_same_table(tmp_path: Path, kind: str) -> None:
    expected = cli_rows("score", str(CANONICAL))
    source = _sources(tmp_path)[kind]
    assert rows(tracesift.score(source)) == expected


def test_the_cli_reads_parquet(tmp_path: Path) -> None:
    parquet = _sources(tmp_path)["parquet"]
    assert cli_rows("score", str(parquet)) == cli_rows("score", str(CANONICAL))


@pytest.mark.parametrize(
    "rule",
    [
        {"metric": "cocoa_ppl", "keep": 0.3},
        {"metric": "conf_mean", "top": 1, "scope": "global"},
        {"metric": "ppl", "threshold": 1.5},
        {"metric": "combo", "keep": 0.5, "balanced": True},
    ],
    ids=str,
)
@pytest.mark.parametrize("export_format", ["canonical", "openai", "csv"])
def test_export_bytes_equal_the_cli(rule: dict, export_format: str) -> None:
    flags = []
    for key, value in rule.items():
        if value is True:
            flags.append(f"--{key}")
        else:
            flags += [f"--{key}", str(value)]
    expected = run_cli("filter", str(CANONICAL), *flags, "--export", export_format, "--allow-empty-prompt")
    got = tracesift.export(str(CANONICAL), format=export_format, allow_empty_prompt=True, **rule)
    assert got == expected and got


def test_export_writes_the_path_and_parquet_matches_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "kept.parquet"
    data = tracesift.export(str(CANONICAL), path=out, format="parquet", metric="cocoa_ppl", keep=0.3)
    assert out.read_bytes() == data
    cli_out = tmp_path / "cli.parquet"
    run_cli("filter", str(CANONICAL), "--metric", "cocoa_ppl", "--keep", "0.3", "--export", "parquet", "--out", str(cli_out))
    assert pq.read_table(out).equals(pq.read_table(cli_out))
    kept = pq.read_table(out).to_pylist()
    canonical = [json.loads(line) for line in run_cli("filter", str(CANONICAL), "--metric", "cocoa_ppl", "--keep", "0.3").splitlines()]
    assert [row["trace_id"] for row in kept] == [row["trace_id"] for row in canonical]
    assert [row["scores"]["cocoa_ppl"] for row in kept] == [row["scores"]["cocoa_ppl"] for row in canonical]


def test_filter_table_holds_the_cli_records() -> None:
    table = tracesift.filter(str(CANONICAL), metric="cocoa_ppl", keep=0.3)
    canonical = [json.loads(line) for line in run_cli("filter", str(CANONICAL), "--metric", "cocoa_ppl", "--keep", "0.3").splitlines()]
    got = table.to_pylist()
    assert [row["trace_id"] for row in got] == [row["trace_id"] for row in canonical]
    assert [row["scores"] for row in got] == [row["scores"] for row in canonical]
    assert tracesift.report(table)["traces"] == 23


def test_evaluate_equals_the_cli() -> None:
    path = str(DATA / "small.jsonl")
    with pytest.warns(tracesift.TracesiftWarning):
        got = tracesift.evaluate(path)
    assert got == json.loads(run_cli("eval", path))


def test_skipped_lines_are_reported_with_their_numbers(tmp_path: Path) -> None:
    path = str(DATA / "small.jsonl")
    with pytest.warns(tracesift.TracesiftWarning, match="line 6"):
        table = tracesift.score(path)
    run_report = tracesift.report(table)
    cli_report_path = tmp_path / "report.json"
    run_cli("score", path, "--report", str(cli_report_path))
    cli_report = json.loads(cli_report_path.read_text())
    assert run_report["skipped"] == cli_report["skipped"]
    assert [skipped["line"] for skipped in run_report["skipped"]] == [6, 8]
    assert run_report["lines"] == cli_report["lines"] and run_report["traces"] == table.num_rows


def test_nothing_usable_raises_with_the_reasons() -> None:
    with pytest.raises(ValueError, match=r"(?s)nothing usable.*line 1: .*line 2: "):
        tracesift.score(b"not json\n{\"question_id\": 1}\n")


def test_a_table_row_without_a_question_is_skipped_by_its_row_number() -> None:
    table = pa.table({"question_id": ["q", None, "q"], "answer": ["up", "up", "down"]})
    with pytest.warns(tracesift.TracesiftWarning, match="line 2: missing required field `question_id`"):
        scored = tracesift.score(table)
    assert scored.column("class").to_pylist() == ["up", "down"]
    with pytest.raises(ValueError, match="line 1: not a trace in any known format"):
        tracesift.score(pa.table({"question_id": [None], "answer": ["up"]}, schema=pa.schema([("question_id", pa.string()), ("answer", pa.string())])))


def test_unknown_settings_raise_type_error_naming_them() -> None:
    with pytest.raises(TypeError, match="'simm'"):
        tracesift.score(str(CANONICAL), simm="rouge_l")
    with pytest.raises(ValueError, match="keep must be a fraction"):
        tracesift.filter(str(CANONICAL), keep=2.0)
    with pytest.raises(ValueError, match="unknown variant"):
        tracesift.score(str(CANONICAL), sim="cosine")


def test_a_missing_file_and_a_wrong_source_raise() -> None:
    with pytest.raises(ValueError, match="cannot open /no/such/file"):
        tracesift.score("/no/such/file")
    with pytest.raises(TypeError, match="cannot read a int"):
        tracesift.score(42)


def test_pandas_dataframe_with_numeric_ids() -> None:
    frame = pd.DataFrame(
        {
            "question_id": [7, 7, 8],
            "trace_id": ["a", "b", "c"],
            "answer": ["up", "down", "up"],
            "logprobs": [[-0.1, -0.2], [-1.0], [-0.5]],
        }
    )
    table = tracesift.score(frame)
    jsonl = "".join(json.dumps(row) + "\n" for row in frame.to_dict(orient="records")).encode()
    assert rows(table) == rows(tracesift.score(jsonl))
    assert table.column("question_id").to_pylist() == ["7", "7", "8"]


def test_semantic_embeds_the_texts_and_its_export_reuses_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    semantic = tracesift.score(str(CANONICAL), sim="semantic", semantic_part="last")
    assert rows(semantic) == cli_rows("score", str(CANONICAL), "--sim", "semantic", "--semantic-part", "last")
    assert rows(semantic) != rows(tracesift.score(str(CANONICAL), sim="rouge_l"))
    # The canonical export carries the embeddings: an `embedding` run scores the same.
    # Every trace with a consistency (a question of one trace has none, and is not kept).
    exported = tracesift.export(str(CANONICAL), format="canonical", sim="semantic", semantic_part="last",
                                keep=1, scope="global", metric="inconsistency")
    with_consistency = {row["trace_id"]: row["consistency"] for row in rows(semantic) if row["consistency"] is not None}
    assert exported.count(b'"embedding":[') == len(with_consistency) > 0
    again = tracesift.score(exported, sim="embedding")
    assert {row["trace_id"]: row["consistency"] for row in rows(again)} == with_consistency
    # Without the model, the error says where to get it.
    monkeypatch.setenv("TRACESIFT_MODEL_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="cargo xtask model"):
        tracesift.score(str(CANONICAL), sim="semantic")
