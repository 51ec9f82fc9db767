"""Concept-pair datasets: relations as (subject, object) word pairs, and the filter that keeps
the pairs a source can represent and drops degenerate ones (with a report per reason).

A relation is a list of counterfactual pairs (Park et al. 2024): "easy -> easiest",
"Athens -> Greece". Built-in set: the Google analogy set shipped with gensim
(``google-analogy``); user files and folders in the formats of
:mod:`convergent.linearity.readers` (TSV, Park, BATS, LRE, paired contexts).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError

Pair = tuple[str, str]

BUILTIN = ("google-analogy",)


MIN_PAIRS = 3  # held-out folds leave >= 2 training pairs (the shuffled baseline re-pairs them)


def check_min_pairs(value: int) -> int:
    """``value`` if it is a usable ``--min-pairs``, else raise (checked before any model loads)."""
    if value < MIN_PAIRS:
        raise ConvergentError(
            f"--min-pairs {value}: at least {MIN_PAIRS} are needed (every held-out fold must "
            "leave 2 training pairs)"
        )
    return value


Contexts = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class PairSet:
    """Relations by name, each a tuple of (subject, object) pairs in file order.

    A subject may have several objects (one pair each; any of them counts as correct).
    Pairs may repeat: :func:`filter_pairs` drops and counts duplicates. ``templates``: per
    relation, prompt templates with ``{}`` for the subject (LRE's ``prompt_templates``);
    ``contexts``: per relation, per pair, the texts ending in each word (Park's paired
    contexts: ``contexts0`` end in the subject, ``contexts1`` in the object).
    """

    name: str
    relations: Mapping[str, tuple[Pair, ...]]
    templates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    contexts: Mapping[str, Mapping[Pair, Contexts]] = field(default_factory=dict)
    format: str = ""

    def __post_init__(self) -> None:
        if not self.relations:
            raise ConvergentError(f"pairs {self.name}: no relations")

    @property
    def words(self) -> list[str]:
        """Every word of every pair, each once, in first-seen order."""
        seen: dict[str, None] = {}
        for pairs in self.relations.values():
            for s, o in pairs:
                seen.setdefault(s)
                seen.setdefault(o)
        return list(seen)

    def answers(self, relation: str) -> dict[str, set[str]]:
        """Every object listed for each subject of ``relation``."""
        out: dict[str, set[str]] = {}
        for s, o in self.relations[relation]:
            out.setdefault(s, set()).add(o)
        return out

    def keep(self, relations: Mapping[str, tuple[Pair, ...]]) -> PairSet:
        """The same set (templates, contexts, format) with other relations' pairs."""
        return replace(
            self, relations=relations,
            templates={r: t for r, t in self.templates.items() if r in relations},
            contexts={r: c for r, c in self.contexts.items() if r in relations},
        )

    def require(self, min_pairs: int = 2) -> PairSet:
        """Raise if any relation has fewer than ``min_pairs`` pairs."""
        for rel, pairs in self.relations.items():
            if len(pairs) < min_pairs:
                raise ConvergentError(
                    f"pairs {self.name}: relation {rel!r} has {len(pairs)} pair(s); "
                    f"at least {min_pairs} are needed"
                )
        return self

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "format": self.format,
            "relations": {r: [list(p) for p in ps] for r, ps in self.relations.items()},
        }
        if self.templates:
            out["templates"] = {r: list(t) for r, t in self.templates.items()}
        return out


@dataclass(frozen=True)
class FilterReport:
    """Per relation: pairs kept, pairs dropped (with the reason), relations dropped entirely.

    ``reasons``: pairs dropped per reason (a word's problem, ``subject equals object``,
    ``identical vectors ...``, ``duplicate pair``); ``relation_reasons``: why each dropped
    relation went (``one distinct object``, ``one distinct subject``, too few pairs).
    """

    kept: Mapping[str, int]
    dropped: Mapping[str, tuple[tuple[str, str, str], ...]]
    dropped_relations: tuple[str, ...]
    rule: str
    reasons: Mapping[str, int] = field(default_factory=dict)
    relation_reasons: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kept": dict(self.kept),
            "dropped_count": {r: len(d) for r, d in self.dropped.items()},
            "dropped_by_reason": dict(self.reasons),
            "dropped_examples": {r: [list(x) for x in d[:10]] for r, d in self.dropped.items()},
            "dropped_relations": list(self.dropped_relations),
            "relations_dropped_because": dict(self.relation_reasons),
        }

    def summary(self) -> str:
        kept = sum(self.kept.values())
        dropped = sum(len(d) for d in self.dropped.values())
        text = f"kept {kept} pairs, dropped {dropped} ({self.rule})"
        if self.reasons:
            text += ": " + ", ".join(f"{k}: {v}" for k, v in self.reasons.items())
        if self.dropped_relations:
            text += "; relations dropped: " + ", ".join(
                f"{r} ({self.relation_reasons[r]})" if r in self.relation_reasons else r
                for r in self.dropped_relations)
        return text


def _unique(pairs: list[Pair]) -> tuple[Pair, ...]:
    return tuple(dict.fromkeys(pairs))


def gensim_data(name: str) -> Path | None:
    """A file of gensim's bundled test data, found without importing gensim (slow)."""
    import importlib.util

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data" / name
    return path if path.is_file() else None


def google_analogy(lowercase: bool = False) -> PairSet:
    """The 14 sections of gensim's ``questions-words.txt`` as relations (unique pairs).

    Each analogy line ``a b c d`` contributes the pairs (a, b) and (c, d).
    """
    path = gensim_data("questions-words.txt")
    if path is None:
        raise ConvergentError("pairs google-analogy needs gensim (pip install gensim)")
    relations: dict[str, list[Pair]] = {}
    section = None
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            if line.startswith(":"):
                section = line[1:].strip()
                relations[section] = []
                continue
            words = line.lower().split() if lowercase else line.split()
            if section is None or len(words) != 4:
                continue
            relations[section] += [(words[0], words[1]), (words[2], words[3])]
    return PairSet("google-analogy", {r: _unique(p) for r, p in relations.items()})


def read_pairs_file(path: str | Path, fmt: str | None = None) -> PairSet:
    """A pairs file or folder in any known format (detected, or named by ``fmt``); see
    :mod:`convergent.linearity.readers`."""
    from convergent.linearity.readers import read_pairs

    return read_pairs(path, fmt)


def load_pairs(spec: str, lowercase: bool = False, fmt: str | None = None) -> PairSet:
    """``google-analogy`` or the path of a pairs file or folder (``fmt`` names its format)."""
    if spec == "google-analogy":
        return google_analogy(lowercase=lowercase)
    if Path(spec).exists():
        return read_pairs_file(spec, fmt)
    raise ConvergentError(
        f"--pairs {spec}: neither a built-in pair set ({', '.join(BUILTIN)}) nor a file or folder"
    )


def filter_pairs(
    pairs: PairSet,
    reason: Callable[[str], str | None],
    rule: str,
    min_pairs: int = MIN_PAIRS,
    max_pairs: int | None = None,
    key: Callable[[str], Hashable] | None = None,
    same_key: str = "identical vectors",
) -> tuple[PairSet, FilterReport]:
    """Keep the pairs whose two words pass ``reason`` (None = keep, else why it fails).

    Degenerate pairs are dropped and counted by reason: a subject equal to its object, a
    subject and object with the same ``key`` (the row the source reads, e.g. after its case
    folding: ``same_key`` names the reason), and repeats of a kept pair. ``max_pairs`` keeps
    the first pairs of each relation (file order). Relations left with fewer than
    ``min_pairs`` pairs, one distinct object or one distinct subject are dropped and
    reported. Raises if no relation survives.
    """
    kept: dict[str, tuple[Pair, ...]] = {}
    counts: dict[str, int] = {}
    dropped: dict[str, tuple[tuple[str, str, str], ...]] = {}
    reasons: dict[str, int] = {}
    gone: dict[str, str] = {}
    cache: dict[str, str | None] = {}
    for rel, rel_pairs in pairs.relations.items():
        good: dict[Pair, None] = {}
        bad: list[tuple[str, str, str]] = []
        for s, o in rel_pairs:
            for w in (s, o):
                if w not in cache:
                    cache[w] = reason(w)
            problems = [(w, cache[w]) for w in (s, o) if cache[w]]
            if problems:
                why, detail = str(problems[0][1]), "; ".join(f"{w}: {r}" for w, r in problems)
            elif s == o:
                why = detail = "subject equals object"
            elif key is not None and key(s) == key(o):
                why = detail = same_key
            elif (s, o) in good:
                why = detail = "duplicate pair"
            else:
                good[(s, o)] = None
                continue
            bad.append((s, o, detail))
            reasons[why] = reasons.get(why, 0) + 1
        chosen = list(good)[:max_pairs] if max_pairs is not None else list(good)
        dropped[rel] = tuple(bad)
        counts[rel] = len(chosen)
        if len(chosen) < min_pairs:
            gone[rel] = f"{len(chosen)} pair(s) < {min_pairs}"
        elif len({o for _, o in chosen}) < 2:
            gone[rel] = "one distinct object"
        elif len({s for s, _ in chosen}) < 2:
            gone[rel] = "one distinct subject"
        else:
            kept[rel] = tuple(chosen)
    report = FilterReport(counts, dropped, tuple(gone), rule, reasons, gone)
    if not kept:
        raise ConvergentError(
            f"pairs {pairs.name}: no relation keeps {min_pairs} pairs after filtering "
            f"({report.summary()})"
        )
    return pairs.keep(kept), report
