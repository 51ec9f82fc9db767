"""The paper's published numbers (``paper.json``) and which of our rows they belong to.

``paper.json`` holds every kappa, Phi_T, lambda_max and cond(S_W) of Fu et al. (2026) that
the toolkit reproduces, one row per figure or table row, each with its origin and a
``match``: the setting it was measured on. A :class:`Setting` describes one of our rows
(a training run, an addition run, or a source such as ``tokens:X``); a paper row belongs to
it when every field of its ``match`` equals the setting's. Settings are built from job
configs, not from labels, so renaming a group changes nothing.

Conventions of the matching: an LSTM with 4 layers is the paper's shallow LSTM
(``lstm-4layer``, no published numbers); any other LSTM stands for its 12-layer LSTM.
word2vec and PPMI have no optimizer. ``perturb`` is ``none`` for the original data; only the
within-document ``swap`` is the paper's Swap Numbers. 3-digit addition matches only in the
paper's single-token format (``answer = "whole"``). Bounds (the paper gives |kappa| <= 15
for every 3-digit run) are stored as ``[low, high]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from convergent.errors import ConvergentError

MEASURES = ("kappa", "phi", "lambda_max", "cond_sw")
CLASSICAL = ("word2vec", "ppmi")
SHALLOW_LSTM_LAYERS = 4
DATA_KINDS = {"tokens": "tokens", "cooc": "cooc"}  # source-spec prefix -> setting kind


@dataclass(frozen=True)
class Setting:
    """What one of our rows measured: ``kind`` train, addition, tokens, cooc or source."""

    kind: str
    arch: str | None = None
    optimizer: str | None = None
    perturb: str | None = None
    digits: int | None = None
    chunk: int | None = None
    answer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def train_setting(train: Mapping[str, Any]) -> Setting:
    """The setting of a training run from its train config (``job.config["train"]``)."""
    arch = str(train["arch"])
    layers = (train.get("model") or {}).get("n_layers")
    if arch == "lstm" and layers == SHALLOW_LSTM_LAYERS:
        arch = "lstm-4layer"
    optimizer = None if arch in CLASSICAL else train.get("optimizer", "adamw")
    return Setting("train", arch=arch, optimizer=optimizer, perturb=train.get("perturb") or "none")


def addition_setting(task: Mapping[str, Any], train: Mapping[str, Any]) -> Setting:
    """The setting of an addition run from its task and train configs."""
    return Setting("addition", arch=train.get("arch"), optimizer=train.get("optimizer"),
                   digits=int(task.get("digits", 9)), chunk=int(task.get("chunk", 3)),
                   answer=_answer_format(task))


def _answer_format(task: Mapping[str, Any]) -> str | None:
    """The task's answer format as the addition task resolves it (None if it cannot say)."""
    try:
        from convergent.tasks.addition import AdditionTask

        return getattr(AdditionTask(**task), "answer", None)
    except (ImportError, TypeError, ConvergentError):
        return None


def source_setting(spec: str) -> Setting:
    """The setting of a source spec: ``tokens:X`` and ``cooc:X`` are the data's own rows."""
    head, sep, _ = spec.partition(":")
    if sep and head in DATA_KINDS:
        return Setting(DATA_KINDS[head])
    return Setting("source", arch=spec)


@dataclass(frozen=True)
class PaperRow:
    """One published row: its label, origin (figure or table), match and values per T."""

    key: str
    label: str
    origin: str
    match: dict[str, Any]
    values: dict[str, dict[int, tuple[float, float]]]  # measure -> T -> (low, high)
    note: str = ""

    def matches(self, setting: Setting) -> bool:
        return all(getattr(setting, k, None) == v for k, v in self.match.items())


@dataclass(frozen=True)
class Published:
    """One published value: exact (low == high) or a bound, with its row and origin."""

    low: float
    high: float
    row: str
    origin: str

    @property
    def exact(self) -> bool:
        return self.low == self.high

    def text(self) -> str:
        if self.exact:
            return f"{self.low:.3g}" if abs(self.low) >= 1000 else f"{self.low:g}"
        if self.low == -self.high:
            return f"|·| ≤ {self.high:g}"
        return f"{self.low:g}..{self.high:g}"

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row, "origin": self.origin}
        if self.exact:
            out["value"] = self.low
        else:
            out["range"] = [self.low, self.high]
        return out


def _values(raw: Mapping[str, Any], where: str) -> dict[int, tuple[float, float]]:
    out = {}
    for t, v in raw.items():
        low, high = (v, v) if isinstance(v, (int, float)) else (
            v if isinstance(v, list) and len(v) == 2 else (None, None))
        if not (isinstance(low, (int, float)) and isinstance(high, (int, float))):
            raise ConvergentError(f"{where}: value {v!r} at T = {t} is neither a number "
                                  "nor [low, high]")
        out[int(t)] = (float(low), float(high))
    return out


def parse_rows(data: Mapping[str, Any]) -> tuple[PaperRow, ...]:
    """Rows of a ``paper.json``-shaped mapping (checked: unknown match fields are refused)."""
    fields = set(Setting.__dataclass_fields__)
    rows = []
    for raw in data.get("rows", []):
        where = f"paper.json row {raw.get('key')!r}"
        unknown = set(raw.get("match", {})) - fields
        if unknown or "kind" not in raw.get("match", {}):
            raise ConvergentError(f"{where}: match needs kind and only {sorted(fields)}, "
                                  f"got {sorted(raw.get('match', {}))}")
        values = {m: _values(raw[m], where) for m in MEASURES if m in raw}
        rows.append(PaperRow(raw["key"], raw["label"], raw["origin"], dict(raw["match"]),
                             values, raw.get("note", "")))
    return tuple(rows)


@lru_cache(maxsize=1)
def paper_rows() -> tuple[PaperRow, ...]:
    """Every published row of the paper (from the package's ``paper.json``)."""
    text = resources.files("convergent.reference").joinpath("paper.json").read_text()
    return parse_rows(json.loads(text))


def published(setting: Setting, rows: tuple[PaperRow, ...] | None = None
              ) -> dict[tuple[str, int], Published]:
    """(measure, T) -> the paper's value for ``setting``; empty if no row matches."""
    out: dict[tuple[str, int], Published] = {}
    for row in paper_rows() if rows is None else rows:
        if not row.matches(setting):
            continue
        for measure, by_t in row.values.items():
            for t, (low, high) in by_t.items():
                out.setdefault((measure, t), Published(low, high, row.key, row.origin))
    return out


def _ours(entry: Mapping[str, Any], measure: str, t: int) -> float | None:
    table = entry.get("fisher" if measure in ("lambda_max", "cond_sw") else "periods", {})
    value = (table.get(str(t)) or {}).get(measure)
    return None if value is None or not math.isfinite(float(value)) else float(value)


@dataclass(frozen=True)
class Comparison:
    """Our values beside the paper's for one row; ``published`` False when none matches."""

    label: str
    setting: Setting
    values: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def published(self) -> bool:
        return bool(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "setting": self.setting.to_dict(),
                "published": self.published, "values": list(self.values)}


def compare(label: str, setting: Setting, entry: Mapping[str, Any],
            rows: tuple[PaperRow, ...] | None = None) -> Comparison:
    """Our results.json ``entry`` beside every published value for ``setting``."""
    values = []
    for (measure, t), paper in sorted(published(setting, rows).items()):
        ours = _ours(entry, measure, t)
        values.append({"measure": measure, "period": t, "ours": ours, **paper.to_dict(),
                       "within": None if ours is None or paper.exact else paper.contains(ours)})
    return Comparison(label, setting, tuple(values))
