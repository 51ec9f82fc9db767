"""The results store: one parquet table of every result with its full config.

``OUT/results.parquet`` is rebuilt from the job folders (the source of truth) whenever a
run finishes, so it always matches them. One row per

- analysis row (``kind`` numbers): an analysis member at one site (and checkpoint),
- training run (``kind`` train): its final loss, steps, tokens,
- addition checkpoint (``kind`` addition): test accuracy and the numbers analysis of the
  task's number tokens at that step,

with the status (ok, failed, pending), timings, the job key, the whole job config as JSON
(``config``) and its fields flattened into columns: ``train.arch``, ``train.model.d_model``,
``numbers.seed``, ``source.spec``, ``task.digits``... Metrics per period T are ``kappa_T``,
``phi_T``, ``spike_T``, ``p_T``, ``accuracy_T``, ``baseline_kappa_T``, ``lambda_max_T``.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.experiments.plan import Job, Member, Plan
from convergent.experiments.worker import job_dir

TABLE = "results.parquet"
FIRST = ("experiment", "kind", "analysis", "label", "site", "step", "status")


def load_plan(out: str | Path) -> Plan:
    file = Path(out) / "plan.json"
    try:
        return Plan.from_dict(json.loads(file.read_text()))
    except (OSError, json.JSONDecodeError, KeyError) as err:
        raise ConvergentError(f"{out}: not an experiment folder (cannot read plan.json: "
                              f"{err})") from None


def _read(file: Path) -> dict[str, Any] | None:
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def flatten(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Nested dicts as dotted columns; lists as JSON text (parquet columns stay scalar)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def _base(plan: Plan, job: Job, record: dict[str, Any] | None) -> dict[str, Any]:
    status = "pending" if record is None else record.get("status", "unknown")
    row = {"experiment": plan.name, "kind": job.kind, "job": job.key, "status": status,
           "error": (record or {}).get("error"), "seconds": (record or {}).get("seconds"),
           "cpu_seconds": (record or {}).get("cpu_seconds"),
           "host": (record or {}).get("host"), "started": (record or {}).get("started"),
           "config": json.dumps(job.config, sort_keys=True)}
    return row


def _source_columns(plan: Plan, job: Job) -> dict[str, Any]:
    """The config of what a numbers job analyses: the run's train config or the source."""
    source = job.config["source"]
    if "run" in source:
        run = plan.jobs.get(source["run"])
        cols = {"source.run": source["run"]}
        if run is not None:
            cols.update(flatten(run.config["train"], "train"))
            for key in ("task", "split"):
                if key in run.config:
                    cols.update(flatten(run.config[key], key))
        return cols
    return {"source.spec": source["spec"], "source.options": json.dumps(source["options"])}


def period_columns(entry: dict[str, Any]) -> dict[str, Any]:
    """Scalar metrics of one ``results.json``-style entry."""
    first, last = entry.get("numbers") or (None, None)
    cols: dict[str, Any] = {"site": entry.get("site"), "dim": entry.get("dim"),
                            "numbers_first": first, "numbers_last": last,
                            "input_hash": entry.get("input_hash"),
                            "warnings": len(entry.get("warnings", []))}
    for t, p in entry.get("periods", {}).items():
        for name in ("kappa", "phi", "spike", "p_value", "accuracy", "baseline_kappa"):
            if name in p:
                cols[f"{name}_{t}"] = p[name]
    for t, f in entry.get("fisher", {}).items():
        cols[f"lambda_max_{t}"] = f.get("lambda_max")
        cols[f"cond_sw_{t}"] = f.get("cond_sw")
    return cols


def _numbers_rows(plan: Plan, out: Path, analysis: str, member: Member) -> list[dict[str, Any]]:
    job = plan.jobs[member.job]
    record = _read(job_dir(out, job.key) / "record.json")
    row = {**_base(plan, job, record), "analysis": analysis, "label": member.label,
           "group": member.group or None, **_source_columns(plan, job),
           **flatten(job.config["settings"], "numbers")}
    result = _read(job_dir(out, job.key) / "result.json") if row["status"] == "ok" else None
    if not result:
        return [row]
    rows = []
    for entry in result.get("entries", []):
        meta = entry.get("meta", {})
        rows.append({**row, "step": meta.get("step"), "tokens": meta.get("tokens"),
                     **period_columns(entry)})
    return rows


def _run_rows(plan: Plan, out: Path, group: str, member: Member) -> list[dict[str, Any]]:
    job = plan.jobs[member.job]
    record = _read(job_dir(out, job.key) / "record.json")
    row = {**_base(plan, job, record), "analysis": None, "label": member.label,
           "group": group, **flatten(job.config["train"], "train")}
    for key in ("task", "split"):
        if key in job.config:
            row.update(flatten(job.config[key], key))
    summary = (record or {}).get("summary") or {}
    row.update({k: summary.get(k) for k in ("final_loss", "steps", "tokens")})
    if job.kind != "addition" or row["status"] != "ok":
        return [row]
    result = _read(job_dir(out, job.key) / "result.json") or {}
    rows = []
    for point in result.get("points", []):
        cols = {"step": point.get("step"), "tokens": point.get("tokens")}
        cols.update({f"test_{k}": v for k, v in (point.get("test") or {}).items()})
        cols.update({f"train_{k}": v for k, v in (point.get("train") or {}).items()})
        if point.get("numbers"):
            cols.update(period_columns(point["numbers"]))
        rows.append({**row, **cols})
    return rows or [row]


def build_table(out: str | Path) -> Any:
    """The results table of folder ``out`` as a pandas DataFrame (see module doc)."""
    import pandas as pd

    folder = Path(out)
    plan = load_plan(folder)
    rows: list[dict[str, Any]] = []
    for group, (_, members) in plan.groups.items():
        for member in members:
            rows.extend(_run_rows(plan, folder, group, member))
    for analysis, (_, members) in plan.analyses.items():
        for member in members:
            rows.extend(_numbers_rows(plan, folder, analysis, member))
    table = pd.DataFrame(rows)
    first = [c for c in FIRST if c in table.columns]
    return table[first + [c for c in table.columns if c not in first]]


def write_table(out: str | Path) -> Path:
    """Rebuild ``out/results.parquet`` atomically; returns its path."""
    from convergent.io import atomic_path

    target = Path(out) / TABLE
    table = build_table(out)
    with atomic_path(target) as tmp:
        table.to_parquet(tmp, index=False)
    return target


def load_table(out: str | Path) -> Any:
    """``out/results.parquet`` (rebuilt from the job folders if it is missing)."""
    import pandas as pd

    file = Path(out) / TABLE
    if not file.is_file():
        load_plan(out)  # a clear error if this is not an experiment folder
        write_table(out)
    return pd.read_parquet(file)


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "!=": operator.ne, ">=": operator.ge, "<=": operator.le, "=": operator.eq,
    ">": operator.gt, "<": operator.lt, "~": lambda col, v: col.astype(str).str.contains(v),
}


def resolve_column(table: Any, name: str) -> str:
    """A column by exact name, or by a unique dotted suffix (``arch`` -> ``train.arch``)."""
    if name in table.columns:
        return name
    matches = [c for c in table.columns if c.endswith(f".{name}")]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConvergentError(f"column {name!r} is ambiguous: {', '.join(matches)}")
    raise ConvergentError(f"no column {name!r} in the results table (see --columns)")


def filter_table(table: Any, filters: Sequence[str]) -> Any:
    """Rows matching every ``COLUMN OP VALUE`` (OP: = != > < >= <= ~ for 'contains')."""
    for text in filters:
        for op in ("!=", ">=", "<=", "=", ">", "<", "~"):
            name, found, value = text.partition(op)
            if found:
                break
        else:
            raise ConvergentError(f"--filter {text!r}: expected COLUMN=VALUE (or != > < >= <= ~)")
        column = resolve_column(table, name.strip())
        typed = _typed(table[column], value.strip())
        if typed is None and op in ("=", "!="):
            table = table[table[column].isna() if op == "=" else table[column].notna()]
        else:
            table = table[_OPS[op](table[column], typed)]
    return table


def _typed(column: Any, value: str) -> Any:
    """``value`` converted to the column's type (numbers, booleans, ``none`` for missing)."""
    import pandas as pd

    if value.lower() in ("none", "null"):
        return None
    if pd.api.types.is_bool_dtype(column):
        return value.lower() in ("1", "true", "yes")
    if pd.api.types.is_numeric_dtype(column):
        try:
            return float(value)
        except ValueError:
            raise ConvergentError(f"--filter: {value!r} is not a number") from None
    return value
