"""tracesift: score LLM reasoning traces by uncertainty and keep the most confident ones
per predicted class — the Rust core of the ``tracesift`` CLI, with Arrow tables in and out.

Every function takes a ``source``: a path or a list of paths (JSONL, JSON, gzip, Parquet),
``bytes`` of such a file, or a table with canonical columns (``pyarrow.Table``, a pandas or
polars ``DataFrame``, anything with ``__arrow_c_stream__``). Settings are the keys of the
settings JSON (``sim=``, ``classes=``, ``window=``, ``combine=`` …); an unknown one raises
``TypeError``. The run report (lines read, skipped lines with their numbers and reasons,
classes, notes) is attached to every returned table: read it with :func:`report`.
Skipped lines also raise a :class:`TracesiftWarning`; input with nothing usable raises
``ValueError`` listing why.

``sim="semantic"`` embeds every text with all-MiniLM-L6-v2 on every core (as the CLI's
``--sim semantic`` does); it reads the model from the folder named by the environment
variable ``TRACESIFT_MODEL_DIR`` (``cargo xtask model`` fetches it). With Ray, each block's
texts are embedded by the worker that scores the block.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Iterable, Mapping, Sequence, Union

import pyarrow as pa

from . import _tracesift

__all__ = [
    "score",
    "filter",
    "export",
    "evaluate",
    "report",
    "metric_names",
    "TracesiftWarning",
]

Source = Union[str, "os.PathLike[str]", bytes, Sequence[Any], Any]

#: The schema-metadata key under which tables carry the run report (JSON).
REPORT_KEY = b"tracesift.report"

_SETTINGS_KEYS = frozenset(_tracesift.settings_keys())
_RULE_KEYS = ("keep", "threshold", "top")


class TracesiftWarning(UserWarning):
    """Lines of the input were skipped (the report lists each with its reason)."""


def metric_names() -> list[str]:
    """Every metric the filter can rank by, in the metric table's order."""
    return list(_tracesift.metric_names())


def _input(item: Any) -> tuple[str, Any]:
    """One source item as the extension takes it: ("path"|"bytes"|"arrow", value)."""
    if isinstance(item, (str, os.PathLike)):
        return ("path", os.fspath(item))
    if isinstance(item, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(item))
    if hasattr(item, "__arrow_c_stream__"):
        return ("arrow", item)
    # pandas before 2.2 has no PyCapsule interface; pyarrow converts it column-wise.
    if type(item).__module__.startswith("pandas"):
        return ("arrow", pa.Table.from_pandas(item, preserve_index=False))
    raise TypeError(
        f"cannot read a {type(item).__name__} as traces: give a path, a list of paths, "
        "bytes, or a table with canonical columns (pyarrow, pandas, polars)"
    )


def _inputs(source: Source) -> list[tuple[str, Any]]:
    if isinstance(source, (list, tuple)):
        if not source:
            raise ValueError("no inputs: the list of sources is empty")
        return [_input(item) for item in source]
    return [_input(source)]


def _settings_json(settings: Mapping[str, Any]) -> str:
    unknown = sorted(set(settings) - _SETTINGS_KEYS)
    if unknown:
        raise TypeError(
            f"unknown setting(s) {', '.join(map(repr, unknown))}; "
            f"settings are: {', '.join(sorted(_SETTINGS_KEYS))}"
        )
    chosen = dict(settings)
    # One rule at a time (SPEC §6): naming one clears the default `keep`.
    if any(chosen.get(key) is not None for key in _RULE_KEYS):
        for key in _RULE_KEYS:
            chosen.setdefault(key, None)
    return json.dumps(chosen)


def _attach(table: pa.Table, report_json: str) -> pa.Table:
    run_report = json.loads(report_json)
    skipped = run_report.get("skipped") or []
    if skipped:
        first = skipped[0]
        warnings.warn(
            f"{len(skipped)} line(s) skipped, first line {first.get('line')}: "
            f"{first.get('reason')} (tracesift.report(table) lists them all)",
            TracesiftWarning,
            stacklevel=3,
        )
    metadata = dict(table.schema.metadata or {})
    metadata[REPORT_KEY] = report_json.encode()
    return table.replace_schema_metadata(metadata)


def report(table: pa.Table) -> dict[str, Any]:
    """The run report attached to a table from :func:`score` or :func:`filter`: ``lines``,
    ``traces``, ``questions``, ``skipped`` (``[{"line", "reason"}]``), ``classes``,
    ``format``, ``notes`` — the CLI's ``--report``."""
    metadata = table.schema.metadata or {}
    if REPORT_KEY not in metadata:
        raise ValueError("this table carries no tracesift report")
    return json.loads(metadata[REPORT_KEY])


def score(source: Source, **settings: Any) -> pa.Table:
    """Scores every trace: one row per trace, in input order, with the columns of
    ``tracesift score`` (``trace_id``, ``question_id``, ``class``, ``greedy``,
    ``n_tokens``, ``invalid_tokens``, then every metric of the metric table)."""
    table, report_json = _tracesift.score(_inputs(source), _settings_json(settings))
    return _attach(table, report_json)


def filter(  # noqa: A001 - the name of the CLI command
    source: Source,
    metric: str | None = None,
    keep: float | None = None,
    threshold: float | None = None,
    top: int | None = None,
    scope: str | None = None,
    candidates: str | None = None,
    balanced: bool | None = None,
    **settings: Any,
) -> pa.Table:
    """The traces ``tracesift filter`` keeps (SPEC §6), in input order: their canonical
    records with a ``scores`` struct column. ``keep`` (a fraction), ``threshold`` or
    ``top``: one of them; none means ``keep=0.1``."""
    settings_json = _filter_settings_json(
        metric, keep, threshold, top, scope, candidates, balanced, settings
    )
    table, report_json = _tracesift.filter(_inputs(source), settings_json)
    return _attach(table, report_json)


def export(
    source: Source,
    path: str | os.PathLike[str] | None = None,
    format: str = "canonical",  # noqa: A002 - the CLI's --export
    metric: str | None = None,
    keep: float | None = None,
    threshold: float | None = None,
    top: int | None = None,
    scope: str | None = None,
    candidates: str | None = None,
    balanced: bool | None = None,
    **settings: Any,
) -> bytes:
    """The bytes ``tracesift filter --export FORMAT`` writes (``canonical``, ``openai``,
    ``trl``, ``sharegpt``, ``alpaca``, ``csv`` or ``parquet``); also written to ``path``
    when given."""
    settings_json = _filter_settings_json(
        metric, keep, threshold, top, scope, candidates, balanced, settings
    )
    data, report_json = _tracesift.export(_inputs(source), settings_json, format)
    _warn_skipped(report_json)
    if path is not None:
        with open(path, "wb") as file:
            file.write(data)
    return data


def evaluate(source: Source, resamples: int | None = None, **settings: Any) -> dict[str, Any]:
    """``tracesift eval``: selective-prediction statistics of every metric against the gold
    ``label``s, the metrics ranked, and how they agree."""
    inputs = _inputs(source)
    settings_json = _settings_json(settings)
    if resamples is None:
        eval_json, report_json = _tracesift.evaluate(inputs, settings_json)
    else:
        eval_json, report_json = _tracesift.evaluate(inputs, settings_json, resamples)
    _warn_skipped(report_json)
    return json.loads(eval_json)


def _warn_skipped(report_json: str) -> None:
    _attach(pa.table({}), report_json)


def _filter_settings_json(
    metric: str | None,
    keep: float | None,
    threshold: float | None,
    top: int | None,
    scope: str | None,
    candidates: str | None,
    balanced: bool | None,
    settings: Mapping[str, Any],
) -> str:
    """The settings JSON of a filter call: its named filter arguments that were given,
    then the other settings."""
    named = {
        "metric": metric,
        "keep": keep,
        "threshold": threshold,
        "top": top,
        "scope": scope,
        "candidates": candidates,
        "balanced": balanced,
    }
    chosen = {key: value for key, value in named.items() if value is not None}
    chosen.update(settings)
    return _settings_json(chosen)


