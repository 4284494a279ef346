"""Shared helpers of the tracesift Python tests: the repository's fixtures, the CLI built
from the same sources, and one local Ray cluster for the whole session."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data"
#: The embedding model of sim="semantic", where `cargo xtask model` puts it (the CLI built
#: from source finds it there too). Set before any Ray worker starts, which inherits it.
MODEL_DIR = REPO / "target" / "model" / "all-MiniLM-L6-v2"
os.environ.setdefault("TRACESIFT_MODEL_DIR", str(MODEL_DIR))


def cli_path() -> str:
    """The `tracesift` binary: $TRACESIFT_CLI, else the target dir's (built by xtask)."""
    explicit = os.environ.get("TRACESIFT_CLI")
    if explicit:
        return explicit
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for profile in ("debug", "release"):
        candidate = target / profile / "tracesift"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("tracesift")
    if found is None:
        raise RuntimeError("build the CLI first: cargo build -p tracesift-cli")
    return found


def run_cli(*args: str) -> bytes:
    """The CLI's stdout for these arguments (it must succeed)."""
    result = subprocess.run([cli_path(), *args], capture_output=True, check=True)
    return result.stdout


def cli_rows(*args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run_cli(*args).splitlines()]


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """A local 2-CPU Ray cluster, started once."""
    import ray
    import ray.data

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()
