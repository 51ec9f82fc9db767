"""Dependency structures among binary latent concepts: independent, a chain, or a user DAG.

A structure is a Bayesian network over m binary concepts. Concept i has parents (indices of
other concepts) and a table ``p_one[i]`` of P(C_i = 1 | parents) with one entry per parent
configuration; the configuration's index is its bits read as a binary number in the parents'
order (first parent = most significant bit), so ``"10"`` (first parent 1, second 0) is row 2.

File format (JSON or TOML), concepts in any order, acyclic::

    [[concepts]]
    name = "royal"
    p = 0.5                          # no parents: P(royal = 1)

    [[concepts]]
    name = "female"
    parents = ["royal"]
    p = { "0" = 0.5, "1" = 0.3 }     # P(female = 1 | royal = 0 / 1)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convergent.errors import ConvergentError

MAX_EXACT_CONCEPTS = 20  # the exact joint over 2^m configurations is enumerated up to here


@dataclass(frozen=True, eq=False)
class ConceptStructure:
    """m binary concepts with parents and conditional tables (see module docstring)."""

    names: tuple[str, ...]
    parents: tuple[tuple[int, ...], ...]
    p_one: tuple[np.ndarray, ...]
    kind: str = "dag"

    def __post_init__(self) -> None:
        m = len(self.names)
        if m < 1:
            raise ConvergentError("concept structure: at least one concept is needed")
        if len(set(self.names)) != m:
            raise ConvergentError(f"concept structure: duplicate concept names in {self.names}")
        if len(self.parents) != m or len(self.p_one) != m:
            raise ConvergentError("concept structure: one parent list and one table per concept")
        tables = []
        for i, (pa, table) in enumerate(zip(self.parents, self.p_one, strict=True)):
            arr = np.asarray(table, dtype=np.float64).reshape(-1)
            if arr.shape[0] != 2 ** len(pa):
                raise ConvergentError(
                    f"concept {self.names[i]!r}: {len(pa)} parent(s) need {2 ** len(pa)} "
                    f"probabilities, got {arr.shape[0]}"
                )
            if np.any(~np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > 1):
                raise ConvergentError(f"concept {self.names[i]!r}: probabilities must be in [0, 1]")
            if any(p == i or p < 0 or p >= m for p in pa) or len(set(pa)) != len(pa):
                raise ConvergentError(f"concept {self.names[i]!r}: invalid parents {pa}")
            tables.append(arr)
        object.__setattr__(self, "p_one", tuple(tables))
        object.__setattr__(self, "_order", _topological_order(self.names, self.parents))

    @property
    def m(self) -> int:
        return len(self.names)

    @property
    def order(self) -> tuple[int, ...]:
        """Concept indices with every parent before its children."""
        return self._order  # type: ignore[attr-defined,no-any-return]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` concept vectors [n, m] (bool) by ancestral sampling, vectorized over n."""
        c = np.zeros((n, self.m), dtype=bool)
        for i in self.order:
            pa = self.parents[i]
            if pa:
                idx = np.zeros(n, dtype=np.int64)
                for p in pa:
                    idx = idx * 2 + c[:, p]
                prob = self.p_one[i][idx]
            else:
                prob = self.p_one[i][0]
            c[:, i] = rng.random(n) < prob
        return c

    def joint(self) -> np.ndarray:
        """Exact P(C = c) for every configuration; entry ``sum_i c_i 2^i`` (m <= 20)."""
        if self.m > MAX_EXACT_CONCEPTS:
            raise ConvergentError(
                f"concept structure: the exact joint needs m <= {MAX_EXACT_CONCEPTS}, got {self.m}"
            )
        bits = token_bits(self.m)
        prob = np.ones(bits.shape[0])
        for i in range(self.m):
            idx = np.zeros(bits.shape[0], dtype=np.int64)
            for p in self.parents[i]:
                idx = idx * 2 + bits[:, p]
            p1 = self.p_one[i][idx]
            prob *= np.where(bits[:, i] == 1, p1, 1.0 - p1)
        return prob

    def to_dict(self) -> dict[str, Any]:
        """The structure in the file format (plus its kind)."""
        concepts = []
        for name, pa, table in zip(self.names, self.parents, self.p_one, strict=True):
            entry: dict[str, Any] = {"name": name}
            if pa:
                entry["parents"] = [self.names[p] for p in pa]
                width = len(pa)
                entry["p"] = {format(k, f"0{width}b"): float(v) for k, v in enumerate(table)}
            else:
                entry["p"] = float(table[0])
            concepts.append(entry)
        return {"kind": self.kind, "concepts": concepts}


def token_bits(m: int) -> np.ndarray:
    """[2^m, m] int array: row y holds the concept vector of token y (bit i = concept i)."""
    y = np.arange(2**m, dtype=np.int64)
    return ((y[:, None] >> np.arange(m)) & 1).astype(np.int64)


def independent(m: int, p: float | Sequence[float] = 0.5) -> ConceptStructure:
    """m independent concepts with P(C_i = 1) = p (a number or one per concept)."""
    probs = np.broadcast_to(np.asarray(p, dtype=np.float64), (m,))
    return ConceptStructure(
        names=_default_names(m),
        parents=tuple(() for _ in range(m)),
        p_one=tuple(np.array([q]) for q in probs),
        kind="independent",
    )


def chain(m: int, coupling: float = 0.8, p_first: float = 0.5) -> ConceptStructure:
    """A Markov chain C_1 -> C_2 -> ...: P(C_{i+1} = C_i) = (1 + coupling) / 2.

    ``coupling`` in [-1, 1] is the correlation between neighbours (0 = independent).
    """
    if not -1.0 <= coupling <= 1.0:
        raise ConvergentError(f"chain coupling must be in [-1, 1], got {coupling}")
    same = (1.0 + coupling) / 2.0
    tables = [np.array([p_first])] + [np.array([1.0 - same, same]) for _ in range(m - 1)]
    return ConceptStructure(
        names=_default_names(m),
        parents=((), *((i,) for i in range(m - 1))),
        p_one=tuple(tables),
        kind="chain",
    )


def load_structure(path: str | Path) -> ConceptStructure:
    """Read a structure from a JSON or TOML file (format in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ConvergentError(f"{path}: no such structure file")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (ValueError, json.JSONDecodeError) as err:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise ConvergentError(f"{path}: not valid {kind}: {err}") from None
    return structure_from_dict(data, origin=str(path))


def structure_from_dict(data: Mapping[str, Any], origin: str = "structure") -> ConceptStructure:
    """Build a structure from the file format's dictionary (``{"concepts": [...]}``)."""
    concepts = data.get("concepts") if isinstance(data, Mapping) else None
    if not isinstance(concepts, list) or not concepts:
        raise ConvergentError(f"{origin}: expected a non-empty list 'concepts'")
    names = []
    for k, entry in enumerate(concepts):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ConvergentError(f"{origin}: concept #{k} needs a string 'name'")
        names.append(entry["name"])
    index = {name: k for k, name in enumerate(names)}
    parents, tables = [], []
    for entry in concepts:
        name = entry["name"]
        pa_names = entry.get("parents", [])
        unknown = [p for p in pa_names if p not in index]
        if unknown:
            raise ConvergentError(f"{origin}: concept {name!r} has unknown parent(s) {unknown}")
        parents.append(tuple(index[p] for p in pa_names))
        tables.append(_table(entry.get("p"), len(pa_names), f"{origin}: concept {name!r}"))
    return ConceptStructure(
        names=tuple(names), parents=tuple(parents), p_one=tuple(tables), kind="dag"
    )


def _table(p: Any, n_parents: int, where: str) -> np.ndarray:
    if n_parents == 0:
        if not isinstance(p, int | float) or isinstance(p, bool):
            raise ConvergentError(f"{where}: 'p' must be a number P(C = 1) without parents")
        return np.array([float(p)])
    if not isinstance(p, Mapping):
        raise ConvergentError(f"{where}: 'p' must map parent values like '01' to P(C = 1)")
    table = np.full(2**n_parents, np.nan)
    for key, value in p.items():
        key = str(key)
        if len(key) != n_parents or set(key) - {"0", "1"}:
            raise ConvergentError(f"{where}: key {key!r} is not {n_parents} digits of 0/1")
        table[int(key, 2)] = float(value)
    missing = [format(k, f"0{n_parents}b") for k in np.flatnonzero(np.isnan(table))]
    if missing:
        raise ConvergentError(f"{where}: missing probabilities for parent values {missing}")
    return table


def _default_names(m: int) -> tuple[str, ...]:
    if m < 1:
        raise ConvergentError(f"the number of concepts must be at least 1, got {m}")
    return tuple(f"c{i}" for i in range(m))


def _topological_order(names: Sequence[str], parents: Sequence[Sequence[int]]) -> tuple[int, ...]:
    order: list[int] = []
    state = [0] * len(names)  # 0 new, 1 on stack, 2 done

    def visit(i: int, path: list[int]) -> None:
        if state[i] == 2:
            return
        if state[i] == 1:
            cycle = " -> ".join(names[k] for k in [*path, i])
            raise ConvergentError(f"concept structure: dependency cycle {cycle}")
        state[i] = 1
        for p in parents[i]:
            visit(p, [*path, i])
        state[i] = 2
        order.append(i)

    for i in range(len(names)):
        visit(i, [])
    return tuple(order)
