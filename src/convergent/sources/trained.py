"""Training runs as sources: ``run:DIR`` (last checkpoint) or ``run:DIR@STEP``.

Sites: ``embed`` (input-embedding rows of the single tokens "0".."999" in the run's
tokenizer; word vectors for word2vec/PPMI runs) and ``unembed`` (output-embedding rows;
the same matrix as ``embed`` when the run ties them, which ``meta["tied"]`` says; context
vectors for word2vec/PPMI); at these sites numbers that are not one token are left out.
Neural runs also have ``layer.{i}`` and ``final_norm``: the states at the number in
context, through the extraction engine (:mod:`convergent.sources.run_layers`; options
``templates``, ``pooling``, ``batch_size``), for every number the tokenizer can write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.provenance import array_hash
from convergent.representation import Representation
from convergent.sources.base import Source, reject_options

STATIC_SITES = ("embed", "unembed")
CONTEXTUAL_OPTIONS = ("templates", "pooling", "batch_size")


def _read_tensor(file: Path, names: Sequence[str]) -> tuple[str, np.ndarray] | None:
    """The first of ``names`` present in a safetensors file, as float32/int64 numpy."""
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as handle:
        keys = set(handle.keys())
        for name in names:
            if name in keys:
                tensor = handle.get_tensor(name)
                if tensor.is_floating_point():
                    tensor = tensor.float()
                return name, tensor.numpy()
    return None


def run_name(run_dir: Path) -> str:
    """The folder's name, or for a ``convergent run`` job (``jobs/<key>/run``) its label."""
    job = run_dir.parent / "job.json"
    if run_dir.name == "run" and job.is_file():
        try:
            return str(json.loads(job.read_text())["label"])
        except (OSError, ValueError, KeyError):
            pass
    return run_dir.name


@dataclass
class CheckpointSource:
    """One checkpoint of a run (neural weights or classical vectors)."""

    name: str
    folder: Path
    step: int
    tokens: int
    config: dict[str, Any]
    tokenizer: Any = field(repr=False)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def classical(self) -> bool:
        return (self.folder / "vectors.safetensors").is_file()

    def sites(self, raw: Sequence[str]) -> list[str]:
        """Canonical site names (``layer:all`` expands) that this checkpoint has."""
        from convergent.extract.sites import parse_sites

        available = STATIC_SITES if self.classical else ("embed", "unembed", "layer",
                                                         "final_norm")
        layers = int(self.config.get("model", {}).get("n_layers", 0))
        try:
            return parse_sites(raw, layers, available)
        except ConvergentError as err:
            kind = f"{self.config.get('arch')} runs" if self.classical else "this run"
            raise ConvergentError(f"{self.name}: {kind}: {err}") from None

    def number_representations(
        self, numbers: Sequence[int], sites: Sequence[str] = ("embed",)
    ) -> list[Representation]:
        from convergent.train.checkpoint import read_state
        from convergent.train.tokenize import number_token_ids

        canonical = self.sites(sites)
        state = read_state(self.folder, verify=True)
        ids = number_token_ids(self.tokenizer, numbers)
        classical = self.classical
        contextual = [s for s in canonical if s not in STATIC_SITES]
        states = self._contextual(numbers, contextual) if contextual else None
        out = []
        for site in canonical:
            if states is not None and site in contextual:
                rows = states.rows[site]
                meta = {**self._meta(False, "context", rows), "pooling": states.pooling,
                        "templates": list(states.templates),
                        "weights_sha": state.get("sha256", {}).get("model.safetensors")}
                out.append(Representation(rows, tuple(states.numbers), self.name, site,
                                          token_ids=tuple(states.token_ids), meta=meta))
                continue
            if classical:
                values, row_of, tied, key = self._classical(site)
            else:
                values, tied, key = self._neural(site)
                row_of = {tid: tid for tid in ids.values()}
            kept = [n for n in numbers if n in ids and ids[n] in row_of]
            rows = values[[row_of[ids[n]] for n in kept]] if kept else values[:0]
            out.append(Representation(rows, tuple(kept), self.name, site,
                                      token_ids=tuple((ids[n],) for n in kept),
                                      meta=self._meta(tied, key, values)))
        return out

    def embeddings(self) -> tuple[np.ndarray, np.ndarray, list[str], bool]:
        """Input and output embedding [rows, d] (word and context vectors for word2vec and
        PPMI), each row's token string, and whether the two are tied."""
        embed, _, tied = self.matrix("embed")
        unembed, tokens, _ = self.matrix("unembed")
        return embed, unembed, tokens, tied

    def matrix(self, site: str) -> tuple[np.ndarray, list[str], bool]:
        """The whole ``embed`` or ``unembed`` matrix [rows, d], each row's token string, and
        whether the run ties the two."""
        vocab = {index: token for token, index in self.tokenizer.get_vocab().items()}
        if self.classical:
            values, row_of, tied, _ = self._classical(site)
            ids = sorted(row_of, key=row_of.__getitem__)
            return values, [vocab.get(t, "") for t in ids], tied
        values, tied, _ = self._neural(site)
        return values, [vocab.get(i, "") for i in range(values.shape[0])], tied

    def _meta(self, tied: bool, tensor: str, values: np.ndarray) -> dict[str, Any]:
        return {"kind": "run", "arch": self.config.get("arch"), "step": self.step,
                "tokens": self.tokens, "tied": tied, "tensor": tensor,
                "checkpoint": str(self.folder), "tokenizer": self.config.get("tokenizer"),
                "optimizer": self.config.get("optimizer"),
                "perturb": self.config.get("perturb"), "weights_sha": array_hash(values)}

    def _contextual(self, numbers: Sequence[int], sites: list[str]) -> Any:
        """The states at the contextual ``sites`` (a ``run_layers.ContextStates``)."""
        from convergent.sources.run_layers import RunExtraction, contextual_rows

        return contextual_rows(self.folder, self.config, self.tokenizer, numbers, sites,
                               RunExtraction.from_options(self.options))

    def _neural(self, site: str) -> tuple[np.ndarray, bool, str]:
        file = self.folder / "model.safetensors"
        names = ["embed.weight"] if site == "embed" else ["head.weight", "embed.weight"]
        found = _read_tensor(file, names)
        if found is None:
            raise ConvergentError(f"{file}: no embedding tensor ({' or '.join(names)})")
        key, values = found
        tied = bool(self.config.get("model", {}).get("tie_embeddings", False))
        return values, tied, key

    def _classical(self, site: str) -> tuple[np.ndarray, dict[int, int], bool, str]:
        file = self.folder / "vectors.safetensors"
        found = _read_tensor(file, [site])
        ids = _read_tensor(file, ["token_ids"])
        if found is None or ids is None:
            raise ConvergentError(f"{file}: no {site} vectors or token ids")
        row_of = {int(t): i for i, t in enumerate(ids[1])}
        return found[1], row_of, False, site


class RunSource:
    """A training run; ``number_representations`` reads the chosen (default last) checkpoint."""

    def __init__(self, run_dir: Path, step: int | None = None,
                 options: dict[str, Any] | None = None) -> None:
        from convergent.train.checkpoint import list_checkpoints
        from convergent.train.tokenize import load_tokenizer

        self.run_dir = run_dir
        self.options = dict(options or {})
        try:
            self.config = json.loads((run_dir / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConvergentError(f"{run_dir}: not a training run ({err})") from None
        self.tokenizer = load_tokenizer(run_dir / "tokenizer.json")
        self._all = list_checkpoints(run_dir)
        if not self._all:
            raise ConvergentError(f"{run_dir}: the run has no checkpoints yet")
        if step is None:
            self.chosen = self._all[-1]
            self.name = run_name(run_dir)
        else:
            match = [c for c in self._all if c.step == step]
            if not match:
                steps = ", ".join(str(c.step) for c in self._all)
                raise ConvergentError(f"{run_dir}: no checkpoint at step {step} (steps: {steps})")
            self.chosen = match[0]
            self.name = f"{run_name(run_dir)}@{step}"

    def _source(self, info: Any, name: str) -> CheckpointSource:
        return CheckpointSource(name, info.path, info.step, info.tokens, self.config,
                                self.tokenizer, self.options)

    def checkpoints(self) -> list[tuple[int, int, Source]]:
        """(step, tokens seen, source) for every checkpoint, in training order."""
        return [(c.step, c.tokens, self._source(c, f"{run_name(self.run_dir)}@{c.step}"))
                for c in self._all]

    def number_representations(
        self, numbers: Sequence[int], sites: Sequence[str] = ("embed",)
    ) -> list[Representation]:
        return self._source(self.chosen, self.name).number_representations(numbers, sites)


    def embeddings(self) -> tuple[np.ndarray, np.ndarray, list[str], bool]:
        """The chosen checkpoint's :meth:`CheckpointSource.embeddings`."""
        return self._source(self.chosen, self.name).embeddings()

    def unembedding(self) -> tuple[np.ndarray, list[str]]:
        """Rows of the output embedding [rows, d] (context vectors for word2vec and PPMI) and
        each row's token string, as :class:`~convergent.sources.hf.HFSource` gives them."""
        unembed, tokens, _ = self._source(self.chosen, self.name).matrix("unembed")
        return unembed, tokens


def open_run(spec: str, **options: Any) -> RunSource:
    """``DIR`` or ``DIR@STEP``; options ``templates``, ``pooling`` and ``batch_size`` apply
    to the contextual sites (``layer.{i}``, ``final_norm``) of neural runs."""
    reject_options(f"run:{spec}", {k: v for k, v in options.items()
                                   if k not in CONTEXTUAL_OPTIONS})
    options = {k: v for k, v in options.items() if v is not None}
    path, step = spec, None
    head, sep, tail = spec.rpartition("@")
    if sep and not Path(spec).exists():
        if not tail.isdigit():
            raise ConvergentError(f"run:{spec}: the part after @ must be a step number")
        path, step = head, int(tail)
    run_dir = Path(path)
    if not (run_dir / "config.json").is_file():
        raise ConvergentError(f"run:{spec}: {run_dir} is not a training run (no config.json)")
    return RunSource(run_dir, step, options)
