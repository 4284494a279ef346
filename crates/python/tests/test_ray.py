"""tracesift.ray on a local 2-CPU cluster keeps exactly the CLI's traces."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import tracesift
from conftest import DATA, cli_rows, run_cli

CANONICAL = DATA / "signals.jsonl"


def _kept_by_cli(paths: list[str], *flags: str) -> list[tuple[str, str]]:
    lines = run_cli("filter", *paths, *flags).splitlines()
    return sorted((str(json.loads(line)["question_id"]), json.loads(line)["trace_id"]) for line in lines)


def _kept_by_ray(dataset, **rule) -> list[tuple[str, str]]:
    import tracesift.ray as tracesift_ray

    rows = tracesift_ray.filter(dataset, **rule).take_all()
    return sorted((str(row["question_id"]), row["trace_id"]) for row in rows)


def _tied_files(tmp_path: Path, n_files: int) -> list[str]:
    """Questions split across files, many traces tied at exactly 0 CoCoA (unanimous
    answers), ties broken by ppl and trace id."""
    generator = random.Random(11)
    lines: list[str] = []
    for question in range(30):
        answers = generator.choice([["up"] * 4, ["up", "up", "down", "none"], ["down"] * 3 + ["up"]])
        for sample, answer in enumerate(answers):
            logprobs = [round(generator.choice([-0.5, -0.25, -1.0]), 2) for _ in range(3)]
            lines.append(
                json.dumps(
                    {
                        "question_id": f"q{question}",
                        "trace_id": f"q{question}-s{sample}",
                        "text": f"Final answer: {answer}",
                        "logprobs": logprobs,
                        "top_logprobs": [[value, value - 1.0] for value in logprobs],
                    }
                )
            )
    generator.shuffle(lines)
    paths = []
    for index in range(n_files):
        path = tmp_path / f"part{index}.jsonl"
        path.write_text("".join(line + "\n" for line in lines[index::n_files]))
        paths.append(str(path))
    return paths


@pytest.mark.usefixtures("ray_cluster")
@pytest.mark.parametrize(
    "rule",
    [
        {"metric": "cocoa_ppl", "keep": 0.1},
        {"metric": "cocoa_ppl", "keep": 0.35},
        {"metric": "conf_mean", "top": 2},
        {"metric": "combo", "keep": 0.2, "balanced": True},
        {"metric": "answer_entropy", "threshold": 0.5, "scope": "global"},
    ],
    ids=str,
)
def test_ray_filter_keeps_the_cli_traces_across_files(tmp_path: Path, rule: dict) -> None:
    import ray.data

    paths = _tied_files(tmp_path, 4)
    flags: list[str] = []
    for key, value in rule.items():
        flags += [f"--{key}"] if value is True else [f"--{key}", str(value)]
    expected = _kept_by_cli(paths, *flags)
    assert expected, "the rule keeps something"
    assert _kept_by_ray(ray.data.read_json(paths), **rule) == expected


@pytest.mark.usefixtures("ray_cluster")
@pytest.mark.parametrize("sim", ["answer", "rouge_l", "embedding", "semantic"])
def test_ray_filter_on_the_signal_fixture(sim: str) -> None:
    import ray.data

    expected = _kept_by_cli([str(CANONICAL)], "--metric", "cocoa_ppl", "--keep", "0.3", "--sim", sim)
    got = _kept_by_ray(ray.data.read_json(str(CANONICAL)), metric="cocoa_ppl", keep=0.3, sim=sim)
    assert got == expected


@pytest.mark.usefixtures("ray_cluster")
def test_ray_score_equals_the_cli_rows(tmp_path: Path) -> None:
    import ray.data

    import tracesift.ray as tracesift_ray

    paths = _tied_files(tmp_path, 3)
    key = lambda row: (row["question_id"], row["trace_id"])  # noqa: E731
    got = sorted(tracesift_ray.score(ray.data.read_json(paths)).take_all(), key=key)
    expected = sorted(cli_rows("score", *paths), key=key)
    assert got == expected


@pytest.mark.usefixtures("ray_cluster")
def test_ray_filter_rows_carry_their_scores_and_columns() -> None:
    import ray.data

    import tracesift.ray as tracesift_ray

    rows = tracesift_ray.filter(ray.data.read_json(str(CANONICAL)), metric="cocoa_ppl", keep=0.3).take_all()
    local = {row["trace_id"]: row for row in tracesift.score(str(CANONICAL)).to_pylist()}
    for row in rows:
        assert row["scores"]["cocoa_ppl"] == local[row["trace_id"]]["cocoa_ppl"]
        assert row["logprobs"] is not None


@pytest.mark.usefixtures("ray_cluster")
def test_ray_needs_trace_ids() -> None:
    import ray.data

    import tracesift.ray as tracesift_ray

    dataset = ray.data.from_items([{"question_id": "q", "answer": "up"}])
    with pytest.raises(ValueError, match="trace_id"):
        tracesift_ray.filter(dataset, keep=0.5)


def _shuffled_signal_files(tmp_path: Path, n_files: int) -> list[str]:
    """The signal fixture's lines shuffled (input order far from trace-id order) and dealt
    over files, so each question's traces are split across files."""
    lines = CANONICAL.read_text().splitlines()
    random.Random(5).shuffle(lines)
    paths = []
    for index in range(n_files):
        path = tmp_path / f"signals{index}.jsonl"
        path.write_text("".join(line + "\n" for line in lines[index::n_files]))
        paths.append(str(path))
    return paths


@pytest.mark.usefixtures("ray_cluster")
@pytest.mark.parametrize("sim", ["rouge_l", "embedding"])
def test_ray_score_is_the_cli_rows_in_input_order_bit_for_bit(tmp_path: Path, sim: str) -> None:
    import ray.data

    import tracesift.ray as tracesift_ray

    paths = _shuffled_signal_files(tmp_path, 3)
    expected = cli_rows("score", *paths, "--sim", sim)
    got = tracesift_ray.score(ray.data.read_json(paths), sim=sim).take_all()
    # Input order: the rows come back in the CLI's order, not sorted by id.
    assert [row["trace_id"] for row in got] == [row["trace_id"] for row in expected]
    assert [row["trace_id"] for row in got] != sorted(row["trace_id"] for row in got)
    # Each question's traces are summed in input order, as the CLI sums them: the same
    # floats, to the last bit.
    assert [row["consistency"] for row in got] == [row["consistency"] for row in expected]
    assert got == expected


@pytest.mark.usefixtures("ray_cluster")
def test_ray_skips_an_unusable_row_as_the_cli_skips_its_line(tmp_path: Path) -> None:
    import ray.data

    import tracesift.ray as tracesift_ray

    lines = CANONICAL.read_text().splitlines()
    bad = json.loads(lines[0])
    bad["trace_id"] = "broken"
    bad["tokens"] = ["only-one"]  # while `logprobs` has more: the importer refuses the row
    path = tmp_path / "with_a_bad_row.jsonl"
    path.write_text("\n".join([*lines[:3], json.dumps(bad), *lines[3:]]) + "\n")
    expected = _kept_by_cli([str(path)], "--metric", "cocoa_ppl", "--keep", "0.3")
    assert expected and all(trace_id != "broken" for _, trace_id in expected)
    assert _kept_by_ray(ray.data.read_json(str(path)), metric="cocoa_ppl", keep=0.3) == expected
    scored = tracesift_ray.score(ray.data.read_json(str(path)), metric="cocoa_ppl").take_all()
    assert [row["trace_id"] for row in scored] == [row["trace_id"] for row in tracesift.score(str(path), metric="cocoa_ppl").to_pylist()]
