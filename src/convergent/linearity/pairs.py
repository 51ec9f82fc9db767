"""Concept-pair datasets: relations as (subject, object) word pairs, and the filter that keeps
the pairs a source can represent (with a report of what was kept and dropped).

A relation is a list of counterfactual pairs (Park et al. 2024): "easy -> easiest",
"Athens -> Greece". Built-in set: the Google analogy set shipped with gensim
(``google-analogy``); user files: TSV (``subject<TAB>object<TAB>relation``, optional header)
or JSONL (``{"subject": ..., "object": ..., "relation": ...}``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError

Pair = tuple[str, str]

BUILTIN = ("google-analogy",)


@dataclass(frozen=True)
class PairSet:
    """Relations by name, each a tuple of unique (subject, object) pairs, in file order."""

    name: str
    relations: Mapping[str, tuple[Pair, ...]]

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
        return {"name": self.name, "relations": {r: [list(p) for p in ps]
                                                 for r, ps in self.relations.items()}}


@dataclass(frozen=True)
class FilterReport:
    """Per relation: pairs kept, pairs dropped (with the reason), relations dropped entirely."""

    kept: Mapping[str, int]
    dropped: Mapping[str, tuple[tuple[str, str, str], ...]]
    dropped_relations: tuple[str, ...]
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kept": dict(self.kept),
            "dropped_count": {r: len(d) for r, d in self.dropped.items()},
            "dropped_examples": {r: [list(x) for x in d[:10]] for r, d in self.dropped.items()},
            "dropped_relations": list(self.dropped_relations),
        }

    def summary(self) -> str:
        kept = sum(self.kept.values())
        dropped = sum(len(d) for d in self.dropped.values())
        text = f"kept {kept} pairs, dropped {dropped} ({self.rule})"
        if self.dropped_relations:
            text += f"; relations dropped: {', '.join(self.dropped_relations)}"
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


def read_pairs_file(path: str | Path) -> PairSet:
    """A TSV (subject, object, relation; optional header) or JSONL file of pairs."""
    file = Path(path)
    if not file.is_file():
        raise ConvergentError(f"{path}: no such pairs file")
    relations: dict[str, list[Pair]] = {}
    jsonl = file.suffix.lower() in (".jsonl", ".json")
    with open(file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            if jsonl:
                try:
                    row = json.loads(line)
                    subject, obj, rel = row["subject"], row["object"], row["relation"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ConvergentError(
                        f"{path}:{number}: expected a JSON object with keys subject, object, "
                        "relation"
                    ) from None
            else:
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 3:
                    raise ConvergentError(
                        f"{path}:{number}: expected 3 tab-separated fields "
                        f"(subject, object, relation), got {len(parts)}"
                    )
                subject, obj, rel = (p.strip() for p in parts)
                if number == 1 and (subject, obj, rel) == ("subject", "object", "relation"):
                    continue
            if not all(isinstance(x, str) and x for x in (subject, obj, rel)):
                raise ConvergentError(f"{path}:{number}: empty subject, object or relation")
            relations.setdefault(rel, []).append((subject, obj))
    if not relations:
        raise ConvergentError(f"{path}: no pairs in the file")
    return PairSet(file.stem, {r: _unique(p) for r, p in relations.items()})


def load_pairs(spec: str, lowercase: bool = False) -> PairSet:
    """``google-analogy`` or the path of a TSV/JSONL pairs file."""
    if spec == "google-analogy":
        return google_analogy(lowercase=lowercase)
    if Path(spec).is_file():
        return read_pairs_file(spec)
    raise ConvergentError(
        f"--pairs {spec}: neither a built-in pair set ({', '.join(BUILTIN)}) nor a file"
    )


def filter_pairs(
    pairs: PairSet,
    reason: Callable[[str], str | None],
    rule: str,
    min_pairs: int = 2,
    max_pairs: int | None = None,
) -> tuple[PairSet, FilterReport]:
    """Keep the pairs whose two words pass ``reason`` (None = keep, else why it fails).

    Relations left with fewer than ``min_pairs`` pairs are dropped and reported;
    ``max_pairs`` keeps the first pairs of each relation (file order, deterministic).
    Raises if no relation survives.
    """
    kept: dict[str, tuple[Pair, ...]] = {}
    counts: dict[str, int] = {}
    dropped: dict[str, tuple[tuple[str, str, str], ...]] = {}
    gone: list[str] = []
    cache: dict[str, str | None] = {}
    for rel, rel_pairs in pairs.relations.items():
        good: list[Pair] = []
        bad: list[tuple[str, str, str]] = []
        for s, o in rel_pairs:
            for w in (s, o):
                if w not in cache:
                    cache[w] = reason(w)
            problems = [f"{w}: {cache[w]}" for w in (s, o) if cache[w]]
            if problems:
                bad.append((s, o, "; ".join(problems)))
            elif s == o:
                bad.append((s, o, "subject equals object"))
            else:
                good.append((s, o))
        if max_pairs is not None:
            good = good[:max_pairs]
        dropped[rel] = tuple(bad)
        counts[rel] = len(good)
        if len(good) >= min_pairs:
            kept[rel] = tuple(good)
        else:
            gone.append(rel)
    report = FilterReport(counts, dropped, tuple(gone), rule)
    if not kept:
        raise ConvergentError(
            f"pairs {pairs.name}: no relation keeps {min_pairs} pairs after filtering "
            f"({report.summary()})"
        )
    return PairSet(pairs.name, kept), report
