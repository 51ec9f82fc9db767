"""Expand a spec into jobs: one per training run, addition run and (analysis, source) pair.

Every job's identity is the content hash of its config (:mod:`.hashing`); labels, group and
analysis names are not part of it, so two analyses of the same source with the same
settings, or two groups with the same run, share one job. Training-config fields added after
the hash format was fixed (``data``, ``engine``) count only when they differ from their
defaults, so existing runs keep their keys (:func:`job_identity`).

Every job also carries its resource request (``gpus``, ``cpus``; :func:`job_resources`),
which backends use to place it; it is not part of the key.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from convergent.errors import ConvergentError
from convergent.experiments.hashing import content_hash
from convergent.experiments.spec import ExperimentSpec, Group

KINDS = ("train", "addition", "numbers")
PATH_PREFIXES = ("matrix", "run", "cache", "vectors")  # source prefixes followed by a path
NEURAL = ("transformer", "gdn", "mamba2", "lstm")  # = convergent.train.config.NEURAL_ARCHS


@dataclass(frozen=True)
class Job:
    """One unit of work; ``config`` is everything that determines its result.

    ``gpus`` and ``cpus`` are what the job asks of a backend (one GPU per rank of a neural
    run on CUDA; ``embedding.workers`` CPUs for word2vec; else one CPU).
    """

    key: str
    kind: str
    label: str
    config: dict[str, Any]
    deps: tuple[str, ...] = ()
    gpus: int = 0
    cpus: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "label": self.label,
                "config": self.config, "deps": list(self.deps), "gpus": self.gpus,
                "cpus": self.cpus}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(data["key"], data["kind"], data["label"], data["config"],
                   tuple(data.get("deps", ())), int(data.get("gpus", 0)),
                   int(data.get("cpus", 1)))


@dataclass(frozen=True)
class Member:
    """One row of an analysis (or one run of a group): its label and its job."""

    label: str
    job: str
    group: str
    point: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "job": self.job, "group": self.group, "point": self.point}


@dataclass(frozen=True)
class Plan:
    """All jobs of an experiment (dependencies first) and how they group for the report."""

    name: str
    description: str
    jobs: dict[str, Job]
    groups: dict[str, tuple[str, tuple[Member, ...]]]  # name -> (kind, runs)
    analyses: dict[str, tuple[str, tuple[Member, ...]]]  # name -> (title, rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description,
            "jobs": [j.to_dict() for j in self.jobs.values()],
            "groups": {k: {"kind": kind, "members": [m.to_dict() for m in ms]}
                       for k, (kind, ms) in self.groups.items()},
            "analyses": {k: {"title": title, "members": [m.to_dict() for m in ms]}
                         for k, (title, ms) in self.analyses.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        def members(items: list[dict[str, Any]]) -> tuple[Member, ...]:
            return tuple(Member(m["label"], m["job"], m["group"], m.get("point", {}))
                         for m in items)

        jobs = {j["key"]: Job.from_dict(j) for j in data["jobs"]}
        groups = {k: (v["kind"], members(v["members"])) for k, v in data["groups"].items()}
        analyses = {k: (v["title"], members(v["members"])) for k, v in data["analyses"].items()}
        return cls(data["name"], data.get("description", ""), jobs, groups, analyses)


def make_plan(spec: ExperimentSpec, cuda: bool = False) -> Plan:
    """Every job of ``spec``, each config checked (a bad field fails before any work).

    ``cuda``: whether the backend sees GPUs, so that ``engine.device`` ``auto`` asks for them.
    """
    jobs: dict[str, Job] = {}
    groups: dict[str, tuple[str, tuple[Member, ...]]] = {}
    for group in spec.groups.values():
        members = []
        for point in grid_points(group):
            job = with_resources(_run_job(group, point), cuda)
            jobs.setdefault(job.key, job)
            members.append(Member(point_label(group, point), job.key, group.name, point))
        groups[group.name] = (group.kind, tuple(members))
    analyses: dict[str, tuple[str, tuple[Member, ...]]] = {}
    for analysis in spec.analyses.values():
        rows = []
        several = len({r.partition("/")[0] for r in analysis.sources} & set(groups)) > 1
        for ref in analysis.sources:
            every = analysis.settings["checkpoints"] == "all"
            for label, group_name, source, deps, point in _resolve(spec, groups, ref, every):
                if several and group_name:
                    label = f"{group_name}/{label}"  # rows of two groups stay distinct
                config = {"source": source, "settings": analysis.settings}
                job = _job("numbers", f"{analysis.name}/{label}", config, deps)
                jobs.setdefault(job.key, job)
                rows.append(Member(label, job.key, group_name, point))
        analyses[analysis.name] = (analysis.title, tuple(rows))
    return Plan(spec.name, spec.description, jobs, groups, analyses)


def job_resources(kind: str, config: dict[str, Any], cuda: bool) -> tuple[int, int]:
    """(GPUs, CPUs) a job asks for; ``cuda``: whether ``engine.device`` auto means CUDA."""
    train = config.get("train")
    if kind == "numbers" or not isinstance(train, dict):
        return 0, 1
    if train.get("arch") not in NEURAL:  # word2vec, PPMI: CPU jobs
        workers = train.get("embedding", {}).get("workers", 1)
        return 0, int(workers) if train.get("arch") == "word2vec" else 1
    engine = train.get("engine", {})
    nproc = int(engine.get("nproc", 1))
    device = engine.get("device", "auto")
    on_gpu = device == "cuda" or (device == "auto" and cuda)
    return (nproc if on_gpu else 0), nproc


def with_resources(job: Job, cuda: bool) -> Job:
    """``job`` with its resource request for a backend that does (not) see GPUs."""
    gpus, cpus = job_resources(job.kind, job.config, cuda)
    return replace(job, gpus=gpus, cpus=cpus)


def for_backend(the_plan: Plan, cuda: bool) -> Plan:
    """``the_plan`` with every job's request recomputed for a backend with(out) GPUs."""
    jobs = {k: with_resources(j, cuda) for k, j in the_plan.jobs.items()}
    return replace(the_plan, jobs=jobs)


def job_identity(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """What a job's key hashes: ``config`` less the later training fields at their defaults."""
    from convergent.train.config import EngineConfig

    identity = {"kind": kind, **config}
    train = config.get("train")
    if isinstance(train, dict):
        train = dict(train)
        if train.get("data") == "":
            del train["data"]
        engine = {k: v for k, v in train.get("engine", {}).items() if k != "nproc"}
        default = {k: v for k, v in asdict(EngineConfig()).items() if k != "nproc"}
        if engine == default:  # nproc > 1 is in config["processes"], as before engines
            train.pop("engine", None)
        identity["train"] = train
    return identity


def grid_points(group: Group) -> list[dict[str, Any]]:
    """The grid's product in key order (one empty point when there is no grid)."""
    keys = list(group.grid)
    return [dict(zip(keys, values, strict=True))
            for values in itertools.product(*(group.grid[k] for k in keys))]


def point_label(group: Group, point: dict[str, Any]) -> str:
    """A member's label: the grid values that differ between members, ``/``-joined.

    A value that does not say what it is (a number, a boolean) is shown with its
    key (``seed=1``, ``digits=9``, the last part of a dotted key); a one-valued grid key is
    left out unless no key varies; a group without a grid is labelled by its name.
    """
    if not point:
        return group.name
    varying = [k for k in point if len(group.grid.get(k, ())) > 1] or list(point)
    short = {k: k.rpartition(".")[2] for k in varying}
    if len(set(short.values())) < len(short):
        short = {k: k for k in varying}
    return "/".join(str(point[k]) if _self_describing(point[k]) else f"{short[k]}={point[k]}"
                    for k in varying)


def _self_describing(value: Any) -> bool:
    return isinstance(value, str) and not value.lstrip("-").replace(".", "", 1).isdigit()


def _matches(member: Member, wanted: str) -> bool:
    """Whether ``wanted`` names ``member``: its label or its grid values ``/``-joined."""
    return wanted in (member.label, "/".join(str(v) for v in member.point.values()))


def _none(value: Any) -> Any:
    return None if value == "none" else value


def train_config(group: Group, changes: dict[str, Any]) -> Any:
    """The validated TrainConfig of ``group.preset`` with ``changes`` (dotted keys) applied."""
    from convergent.train.config import TrainConfig, with_changes
    from convergent.train.presets import preset

    where = f"[{group.kind}.{group.name}]"
    arch = _none(changes.get("arch", "transformer"))
    try:
        base = preset(group.preset, arch) if group.preset else TrainConfig(arch=arch)
        return with_changes(base, changes)
    except (ConvergentError, TypeError) as err:
        raise ConvergentError(f"{where} {_describe(changes)}: {err}") from None


def _describe(changes: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in changes.items()) or "(no changes)"


def _run_job(group: Group, point: dict[str, Any]) -> Job:
    changes = {**group.set, **point}
    label = f"{group.name}/{point_label(group, point)}"
    if group.processes > 1:  # the group's `processes` is engine.nproc (torchrun ranks)
        given = changes.get("engine.nproc", group.processes)
        if given != group.processes:
            raise ConvergentError(f"[{group.kind}.{group.name}] processes {group.processes} "
                                  f"and engine.nproc {given} disagree; give one of them")
        changes["engine.nproc"] = group.processes
    if group.kind == "train":
        config: dict[str, Any] = {"train": train_config(group, changes).to_dict()}
        return _job("train", label, _with_processes(config))
    task = dict(group.task)
    split = dict(group.split)
    rest = {}
    for key, value in changes.items():
        head, _, tail = key.partition(".")
        if head in ("task", "split") and tail:
            (task if head == "task" else split)[tail] = _none(value)
        else:
            rest[key] = value
    config = {"task": task, "split": split, "loss_on": group.loss_on,
              "train": addition_config(group, task, split, rest)}
    return _job("addition", label, _with_processes(config))


def _with_processes(config: dict[str, Any]) -> dict[str, Any]:
    """``processes`` beside the train config when it has several ranks (the older spelling
    of engine.nproc, kept so such runs keep their keys)."""
    nproc = config["train"]["engine"]["nproc"]
    return {**config, "processes": nproc} if nproc > 1 else config


def _job(kind: str, label: str, config: dict[str, Any], deps: tuple[str, ...] = ()) -> Job:
    return Job(content_hash(job_identity(kind, config)), kind, label, config, deps)


def addition_config(group: Group, task: dict[str, Any], split: dict[str, Any],
                    changes: dict[str, Any]) -> dict[str, Any]:
    """The engine config of an addition run (checked by building the task and split)."""
    try:
        from convergent.tasks.addition import AdditionTask
        from convergent.tasks.dataset import SplitConfig
        from convergent.tasks.run import task_config
    except ModuleNotFoundError:
        raise ConvergentError(f"[addition.{group.name}]: this version of convergent has no "
                              "addition task (convergent.tasks)") from None
    where = f"[addition.{group.name}]"
    try:
        built = AdditionTask(**task)
        SplitConfig(**split)
    except TypeError as err:
        raise ConvergentError(f"{where} task/split: {err}") from None
    base = train_config(group, changes)
    return task_config(built, base).to_dict()


def _resolve(spec: ExperimentSpec, groups: dict[str, tuple[str, tuple[Member, ...]]],
             ref: str, all_checkpoints: bool = False
             ) -> list[tuple[str, str, dict[str, Any], tuple[str, ...], dict[str, Any]]]:
    """(label, group, source config, deps, grid point) for a reference in an analysis."""
    name, _, member = ref.partition("/")
    if name in spec.sources:
        entry = spec.sources[name]
        check_source(entry.spec, f"[sources.{name}]", all_checkpoints)
        return [(name, "", {"spec": entry.spec, "options": entry.options}, (), {})]
    kind, members = groups[name]
    chosen = [m for m in members if not member or _matches(m, member)]
    if not chosen:
        labels = ", ".join(m.label for m in members)
        raise ConvergentError(f"analysis source {ref!r}: group {name!r} has no member "
                              f"{member!r} (members: {labels})")
    del kind
    return [(m.label, name, {"run": m.job}, (m.job,), m.point) for m in chosen]



def check_source(spec: str, where: str, all_checkpoints: bool = False) -> None:
    """Refuse, before any work, a source spec that names nothing, or a static source
    analysed with ``checkpoints = "all"`` (only training runs have checkpoints).

    Checks what needs no loading: a path prefix's path exists, a bundled name is known, a plain
    spec is a file, a folder or a hub id; loading problems are still the job's.
    """
    from pathlib import Path

    from convergent.sources.resolve import CATALOG, PREFIXES

    prefix, sep, rest = spec.partition(":")
    path = Path(spec)
    if sep and prefix in PREFIXES and not path.exists():
        run = prefix == "run"
        target = rest.partition("@")[0] if run else rest
        if prefix in PATH_PREFIXES and not Path(target).exists():
            raise ConvergentError(f"{where} spec {spec!r}: {target} does not exist")
    elif spec in CATALOG or path.exists():
        run = path.is_dir() and (path / "manifest.json").is_file() \
            and not (path / "cache.json").is_file()
    elif spec.count("/") == 1 and not spec.startswith((".", "/")):
        run = False  # a hub id: resolved when the job downloads it
    else:
        raise ConvergentError(f"{where} spec {spec!r}: no such file, folder or bundled "
                              f"source (bundled: {', '.join(sorted(CATALOG))}; prefixes: "
                              f"{', '.join(p + ':' for p in PREFIXES)})")
    if all_checkpoints and not run:
        raise ConvergentError(f"{where} spec {spec!r}: checkpoints = 'all' needs a training "
                              "run (a [train.*] group or a run: folder); use 'last'")
