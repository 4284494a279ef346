"""tracesift on Ray Data: the same scores and the same kept traces as ``tracesift filter``,
for trace sets spread over many files and machines.

The work splits the way the maths does:

1. per trace (``map_batches``, no shuffle): each batch of canonical rows is scored as far
   as one trace allows — token signals, class, similarity payload — and its token arrays
   are dropped; the small per-trace parts are numbered in the dataset's order (block
   index, then row), so later stages can restore input order after the shuffle;
2. per question (``groupby("question_id").map_groups``): consistency, answer entropy and
   the similarity-graph signals, from the small per-trace parts taken in input order —
   the CLI's order, so sums come out bit for bit the same;
3. run-wide, on the driver: every trace's scores (a few hundred bytes, never tokens), in
   input order, for ``combo``'s ranks and the per-class cut-offs of SPEC §6;
4. ``filter`` only: a last ``map_batches`` over the input keeps the chosen rows.

Rows need a ``trace_id``: the last stage finds kept rows by their ids.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pyarrow as pa
import ray.data

from . import _filter_settings_json, _settings_json, _tracesift

__all__ = ["score", "filter"]

_LOG = logging.getLogger("tracesift.ray")

#: The column numbering per-trace parts in input order: block index in the upper bits,
#: row within the block in the lower ``_ROW_BITS``.
_POSITION = "position"
_ROW_BITS = 32


def _trace_pass(batch: pa.Table, settings_json: str) -> pa.Table:
    """Stage 1 (``map_batches``): one row per trace, its tokens reduced. A row that is not
    a usable trace is skipped, as ``tracesift filter`` skips its line, and logged with its
    reason (Ray forwards a worker's log to the driver)."""
    parts, skipped_json = _tracesift.trace_pass(batch, settings_json)
    for skip in json.loads(skipped_json):
        row = batch.slice(max(int(skip["line"]) - 1, 0), 1).to_pylist()
        ids = {key: row[0].get(key) for key in ("question_id", "trace_id")} if row else {}
        _LOG.warning("tracesift: skipped a row that is not a usable trace (%s): %s", ids, skip["reason"])
    return parts


@ray.remote
def _numbered(block: pa.Table, block_index: int) -> pa.Table:
    """A block of per-trace parts with each row's input position (block, then row)."""
    if block.num_rows >= 1 << _ROW_BITS:
        raise ValueError(f"a block of {block.num_rows} traces is too large to number")
    first = block_index << _ROW_BITS
    positions = pa.array(range(first, first + block.num_rows), type=pa.int64())
    return block.append_column(_POSITION, positions)


def _question_pass(group: pa.Table, settings_json: str) -> pa.Table:
    """Stage 2 (``map_groups``): one question's traces scored together, in input order
    (the order the CLI absorbs them in, so its sums are reproduced bit for bit)."""
    group = group.sort_by(_POSITION)
    scored = _tracesift.question_pass(group, settings_json)
    # The core returns a question's traces in the order it was given them.
    if scored.column("trace_id").to_pylist() != group.column("trace_id").to_pylist():
        raise RuntimeError("the per-question pass changed the order of its traces")
    return scored.append_column(_POSITION, group.column(_POSITION))


def _check_trace_ids(ds: ray.data.Dataset) -> None:
    schema = ds.schema()
    names = list(schema.names) if schema is not None else []
    if "trace_id" not in names or "question_id" not in names:
        raise ValueError(
            "tracesift.ray needs `question_id` and `trace_id` columns (made-up trace ids "
            f"depend on input order, which a shuffle does not keep); the dataset has {names}"
        )


def _gathered(ds: ray.data.Dataset, settings_json: str) -> tuple[pa.Table, list[bool]]:
    """Stages 1–3: the score table of every trace and whether the filter keeps it."""
    _check_trace_ids(ds)
    parts = ds.map_batches(
        _trace_pass,
        batch_format="pyarrow",
        fn_kwargs={"settings_json": settings_json},
    )
    # Blocks keep the dataset's order only with `preserve_order`; the setting lives in the
    # context `ds` shares with what derives from it, so it is restored afterwards.
    options = parts.context.execution_options
    preserved = options.preserve_order
    options.preserve_order = True
    try:
        part_blocks = parts.to_arrow_refs()
    finally:
        options.preserve_order = preserved
    if not part_blocks:
        raise ValueError("nothing usable in the dataset: no traces")
    numbered = ray.data.from_arrow_refs(
        [_numbered.remote(block, block_index) for block_index, block in enumerate(part_blocks)]
    )
    scored = numbered.groupby("question_id").map_groups(
        _question_pass,
        batch_format="pyarrow",
        fn_kwargs={"settings_json": settings_json},
    )
    refs = scored.to_arrow_refs()
    tables = [table for table in ray.get(refs) if table.num_rows > 0]
    if not tables:
        raise ValueError("nothing usable in the dataset: no traces")
    everything = pa.concat_tables(tables).sort_by(_POSITION)
    return _tracesift.gather(everything, settings_json)


def score(ds: ray.data.Dataset, **settings: Any) -> ray.data.Dataset:
    """Every trace's scores (the columns of ``tracesift score``), in the dataset's order —
    for ``ray.data.read_json(paths)`` the CLI's input order."""
    table, _ = _gathered(ds, _settings_json(settings))
    return ray.data.from_arrow(table)


def _key_strings(column: pa.ChunkedArray | pa.Array) -> list[str]:
    """Ids as the core writes them: strings as they are, numbers as their JSON text."""
    return [value if isinstance(value, str) else json.dumps(value) for value in column.to_pylist()]


def _keep_rows(batch: pa.Table, kept_positions: dict[tuple[str, str], int], kept_scores: pa.Table) -> pa.Table:
    """Stage 4 (``map_batches``): the batch's kept rows, with their scores as a struct."""
    keys = zip(_key_strings(batch.column("question_id")), _key_strings(batch.column("trace_id")))
    rows: list[int] = []
    positions: list[int] = []
    for row, key in enumerate(keys):
        position = kept_positions.get(key)
        if position is not None:
            rows.append(row)
            positions.append(position)
    kept = batch.take(pa.array(rows, type=pa.int64()))
    scores = kept_scores.take(pa.array(positions, type=pa.int64()))
    struct = pa.StructArray.from_arrays(
        [scores.column(name).combine_chunks() for name in scores.column_names],
        names=scores.column_names,
    )
    return kept.append_column("scores", struct)


def filter(  # noqa: A001 - the name of the CLI command
    ds: ray.data.Dataset,
    metric: str | None = None,
    keep: float | None = None,
    threshold: float | None = None,
    top: int | None = None,
    scope: str | None = None,
    candidates: str | None = None,
    balanced: bool | None = None,
    **settings: Any,
) -> ray.data.Dataset:
    """The rows of ``ds`` that ``tracesift filter`` keeps (SPEC §6: the same traces, the
    same tie-breaks), with a ``scores`` struct column."""
    settings_json = _filter_settings_json(
        metric, keep, threshold, top, scope, candidates, balanced, settings
    )
    table, kept = _gathered(ds, settings_json)
    kept_scores = table.filter(pa.array(kept, type=pa.bool_()))
    kept_positions = {
        key: position
        for position, key in enumerate(
            zip(
                kept_scores.column("question_id").to_pylist(),
                kept_scores.column("trace_id").to_pylist(),
            )
        )
    }
    score_columns = kept_scores.drop_columns(["question_id", "trace_id"])
    return ds.map_batches(
        _keep_rows,
        batch_format="pyarrow",
        fn_kwargs={"kept_positions": kept_positions, "kept_scores": score_columns},
    )
