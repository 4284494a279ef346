"""Ray Data pipeline against the single-process CLI: `tracesift.ray.filter` on a local
cluster with 1 and 2 workers over a set of generated files, checked to keep exactly the
CLI's traces, with throughput and scaling.

    target/pyenv/bin/python scripts/bench_ray.py --files 16 --size-mb 8

Files come from `cargo xtask gen` (seeded; questions of later files reuse the ids of
earlier ones, so questions are split across files).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def generate(folder: Path, n_files: int, size_mb: float) -> list[str]:
    """`n_files` JSONL files of `size_mb` MB each (kept between runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n_files):
        path = folder / f"part{index:02}.jsonl"
        if not path.exists():
            subprocess.run(
                ["cargo", "xtask", "gen", "--out", str(path), "--size-mb", str(size_mb), "--seed", str(index + 1)],
                cwd=REPO,
                check=True,
            )
        paths.append(str(path))
    return paths


def cli_binary() -> str:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "release" / "tracesift")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--size-mb", type=float, default=8.0)
    parser.add_argument("--workers", default="1,2")
    arguments = parser.parse_args()
    # One folder per file size: a file made for another size is never reused.
    paths = generate(REPO / "target" / "bench-ray" / f"{arguments.size_mb:g}mb", arguments.files, arguments.size_mb)
    total_mb = sum(os.path.getsize(path) for path in paths) / 1e6
    subprocess.run(["cargo", "build", "--release", "-p", "tracesift-cli"], cwd=REPO, check=True)
    flags = ["--metric", "cocoa_ppl", "--keep", "0.1"]
    started = time.perf_counter()
    cli_out = subprocess.run([cli_binary(), "filter", *paths, *flags, "--threads", "1"], capture_output=True, check=True).stdout
    cli_seconds = time.perf_counter() - started
    expected = sorted((json.loads(line)["question_id"], json.loads(line)["trace_id"]) for line in cli_out.splitlines())
    print(f"{len(paths)} files, {total_mb:.0f} MB, {len(expected)} traces kept")
    print(f"CLI filter, one thread:   {cli_seconds:7.2f} s  {total_mb / cli_seconds:7.1f} MB/s")

    import ray
    import ray.data

    import tracesift.ray as tracesift_ray

    first_seconds: float | None = None
    for workers in (int(value) for value in arguments.workers.split(",")):
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        ray.data.DataContext.get_current().enable_progress_bars = False
        started = time.perf_counter()
        rows = tracesift_ray.filter(ray.data.read_json(paths), metric="cocoa_ppl", keep=0.1).take_all()
        seconds = time.perf_counter() - started
        # Scaling against the first worker count given (1 by default).
        first_seconds = seconds if first_seconds is None else first_seconds
        got = sorted((row["question_id"], row["trace_id"]) for row in rows)
        same = "same traces as the CLI" if got == expected else "DIFFERENT traces from the CLI"
        print(
            f"Ray filter, {workers} worker(s):  {seconds:7.2f} s  {total_mb / seconds:7.1f} MB/s  "
            f"{first_seconds / seconds:5.2f}x the first  {cli_seconds / seconds:5.2f}x the CLI  ({same})"
        )
        ray.shutdown()


if __name__ == "__main__":
    main()
