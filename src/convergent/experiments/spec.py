"""Experiment specifications in TOML: sources, training runs (grids), addition tasks, analyses.

A spec is a TOML file (or the same data as a dict)::

    [experiment]
    name = "architectures"            # default output folder: out/<name>
    description = "..."

    [numbers]                          # defaults of every [analyses.*] table
    numbers = "0:100"                  # half-open range, as on the command line
    moduli = "2:11"
    folds = 5
    seed = 0
    permutations = 100

    [sources.glove]                    # any source spec convergent numbers takes
    spec = "glove-6b-50d"
    options = {}                       # keyword options for the source (e.g. templates)

    [train.arch]                       # a group of training runs
    preset = "quick"                   # convergent.train.presets (optional)
    processes = 1                      # = engine.nproc: ranks of each run (torchrun DDP)
    set = { tokens = 300_000 }         # fields of TrainConfig; "model.d_model" for nested
    # engine fields too: set = { "engine.device" = "cuda", "engine.nproc" = 8 }
    grid = { arch = ["transformer", "lstm"], seed = [0, 1] }   # product of every list

    [addition.multi]                   # addition task runs (train + evaluate every checkpoint)
    processes = 1                      # as for [train.*]
    set = { arch = "transformer", tokens = 200_000 }
    task = { digits = 9, chunk = 3 }
    split = { test_pairs = 2000 }
    grid = { "task.digits" = [3, 9], optimizer = ["adamw", "muon"] }

    [analyses.architectures]           # one numbers analysis over sources and groups
    sources = ["glove", "arch", "arch/lstm"]   # a source, a whole group, or one member
    title = "Architectures"
    numbers = "0:100"                  # any [numbers] key can be overridden here
    sites = ["embed"]
    checkpoints = "last"               # or "all" (training dynamics)

Grid keys name any config field (dotted for nested ones); ``"none"`` stands for an unset
value (TOML has no null), e.g. ``perturb = ["none", "swap"]``. A neural run on CUDA (or on
``engine.device`` ``auto`` where the backend sees GPUs) asks for ``engine.nproc`` GPUs.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError

NUMBER_DEFAULTS: dict[str, Any] = {
    "numbers": "0:100", "moduli": "2:11", "folds": 5, "seed": 0, "permutations": 100,
    "sites": ["embed"], "contiguous": False, "checkpoints": "last",
}
TOP_LEVEL = ("experiment", "numbers", "sources", "train", "addition", "analyses")
GROUP_KEYS = {"train": ("preset", "set", "grid", "processes"),
              "addition": ("preset", "set", "grid", "task", "split", "loss_on", "processes")}
ANALYSIS_KEYS = ("kind", "sources", "title", *NUMBER_DEFAULTS)


@dataclass(frozen=True)
class SourceEntry:
    """An existing source (bundled name, file, folder, hub id) with its options."""

    name: str
    spec: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Group:
    """Training (``kind`` train) or addition-task runs: ``set`` fields plus a ``grid``."""

    name: str
    kind: str
    preset: str | None
    set: dict[str, Any]
    grid: dict[str, list[Any]]
    task: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    loss_on: str = "answer"
    processes: int = 1


@dataclass(frozen=True)
class Analysis:
    """A numbers analysis of some sources and groups with its settings."""

    name: str
    kind: str
    sources: tuple[str, ...]
    title: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class ExperimentSpec:
    """A parsed spec; :func:`convergent.experiments.plan.plan` expands it into jobs."""

    name: str
    description: str
    sources: dict[str, SourceEntry]
    groups: dict[str, Group]
    analyses: dict[str, Analysis]
    raw: dict[str, Any]
    path: Path | None = None

    def default_out(self) -> Path:
        return Path("out") / self.name


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and check a TOML spec (errors name the file and the key)."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text())
    except OSError as err:
        raise ConvergentError(f"{file}: cannot read the spec ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConvergentError(f"{file}: not valid TOML ({err})") from None
    return parse_spec(data, where=str(file), path=file)


def parse_spec(data: dict[str, Any], where: str = "spec",
               path: Path | None = None) -> ExperimentSpec:
    """Check the structure of spec ``data`` (a dict as TOML gives it)."""
    _known(data, TOP_LEVEL, where)
    meta = _table(data, "experiment", where)
    _known(meta, ("name", "description"), f"{where}: [experiment]")
    name = meta.get("name") or (path.stem if path else "")
    if not isinstance(name, str) or not name or "/" in name:
        raise ConvergentError(f"{where}: [experiment] name must be a non-empty string "
                              "without '/'")
    defaults = {**NUMBER_DEFAULTS, **_table(data, "numbers", where)}
    _known(defaults, tuple(NUMBER_DEFAULTS), f"{where}: [numbers]")
    sources = {key: _source(key, value, where)
               for key, value in _table(data, "sources", where).items()}
    groups: dict[str, Group] = {}
    for kind in ("train", "addition"):
        for key, value in _table(data, kind, where).items():
            if key in groups or key in sources:
                raise ConvergentError(f"{where}: the name {key!r} is used twice")
            groups[key] = _group(kind, key, value, where)
    analyses = {key: _analysis(key, value, defaults, where)
                for key, value in _table(data, "analyses", where).items()}
    names = set(sources) | set(groups)
    for key in names | set(analyses):
        if "/" in key or not key:
            raise ConvergentError(f"{where}: the name {key!r} must be non-empty and have no "
                                  "'/' (it separates a group from a member)")
    for analysis in analyses.values():
        for ref in analysis.sources:
            if ref.partition("/")[0] not in names:
                raise ConvergentError(
                    f"{where}: [analyses.{analysis.name}] source {ref!r} is neither a "
                    f"[sources.*] nor a [train.*] or [addition.*] name "
                    f"(known: {', '.join(sorted(names)) or 'none'})")
    if not analyses and not groups:
        raise ConvergentError(f"{where}: nothing to do (no [train.*], [addition.*] or "
                              "[analyses.*] tables)")
    return ExperimentSpec(name, str(meta.get("description", "")), sources, groups, analyses,
                          data, path)


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConvergentError(f"{where}: {key} must be a table ([{key}])")
    return value


def _known(data: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConvergentError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: "
                              f"{', '.join(allowed)})")


def _source(name: str, value: Any, where: str) -> SourceEntry:
    here = f"{where}: [sources.{name}]"
    if isinstance(value, str):
        return SourceEntry(name, value)
    if not isinstance(value, dict) or not isinstance(value.get("spec"), str):
        raise ConvergentError(f"{here} needs spec = \"...\" (a source spec string)")
    _known(value, ("spec", "options"), here)
    options = value.get("options", {})
    if not isinstance(options, dict):
        raise ConvergentError(f"{here} options must be a table")
    return SourceEntry(name, value["spec"], dict(options))


def _group(kind: str, name: str, value: Any, where: str) -> Group:
    here = f"{where}: [{kind}.{name}]"
    if not isinstance(value, dict):
        raise ConvergentError(f"{here} must be a table")
    _known(value, GROUP_KEYS[kind], here)
    grid = value.get("grid", {})
    if not isinstance(grid, dict):
        raise ConvergentError(f"{here} grid must be a table of lists")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConvergentError(f"{here} grid.{key} must be a non-empty list")
    for key in ("set", "task", "split"):
        if not isinstance(value.get(key, {}), dict):
            raise ConvergentError(f"{here} {key} must be a table")
    preset = value.get("preset")
    if preset is not None and not isinstance(preset, str):
        raise ConvergentError(f"{here} preset must be a string")
    processes = value.get("processes", 1)
    if not isinstance(processes, int) or processes < 1:
        raise ConvergentError(f"{here} processes must be a positive integer")
    return Group(name, kind, preset, dict(value.get("set", {})),
                 {k: list(v) for k, v in grid.items()}, dict(value.get("task", {})),
                 dict(value.get("split", {})), str(value.get("loss_on", "answer")), processes)


def _analysis(name: str, value: Any, defaults: dict[str, Any], where: str) -> Analysis:
    here = f"{where}: [analyses.{name}]"
    if not isinstance(value, dict):
        raise ConvergentError(f"{here} must be a table")
    _known(value, ANALYSIS_KEYS, here)
    kind = value.get("kind", "numbers")
    if kind != "numbers":
        raise ConvergentError(f"{here} kind {kind!r}: only 'numbers' analyses exist so far")
    refs = value.get("sources")
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
        raise ConvergentError(f"{here} sources must be a non-empty list of names")
    settings = {k: value.get(k, defaults[k]) for k in NUMBER_DEFAULTS}
    if settings["checkpoints"] not in ("last", "all"):
        raise ConvergentError(f"{here} checkpoints must be 'last' or 'all'")
    settings["numbers"] = _range(settings["numbers"], f"{here} numbers")
    settings["moduli"] = list(range(*_range(settings["moduli"], f"{here} moduli")))
    for key in ("folds", "seed", "permutations"):
        if not isinstance(settings[key], int) or settings[key] < 0:
            raise ConvergentError(f"{here} {key} must be a non-negative integer")
    sites = settings["sites"]
    if isinstance(sites, str):
        settings["sites"] = [sites]
    elif not isinstance(sites, list) or not all(isinstance(s, str) for s in sites):
        raise ConvergentError(f"{here} sites must be a list of site names")
    return Analysis(name, kind, tuple(refs), str(value.get("title", name)), settings)


def _range(value: Any, where: str) -> list[int]:
    """``"A:B"`` or ``[A, B]`` as ``[A, B]`` (half-open)."""
    from convergent.sources.selection import parse_range

    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        value = f"{value[0]}:{value[1]}"
    if not isinstance(value, str):
        raise ConvergentError(f"{where}: expected \"A:B\" or [A, B]")
    found = parse_range(value, what=where)
    return [found.start, found.stop]
