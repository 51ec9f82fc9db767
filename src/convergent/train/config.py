"""Training configuration: one frozen dataclass, saved as ``config.json`` in every run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError

NEURAL_ARCHS = ("transformer", "gdn", "mamba2", "lstm")
CLASSICAL_ARCHS = ("word2vec", "ppmi")
ARCHS = NEURAL_ARCHS + CLASSICAL_ARCHS
OPTIMIZERS = ("adamw", "muon")
TOKENIZERS = ("bpe", "digit", "word")
SCHEDULES = ("cosine", "linear", "constant")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of a neural model. ``d_ff`` 0 means the architecture's default multiple of width.

    ``head_dim`` is used by the Transformer (``d_model // n_heads`` when 0), Gated DeltaNet
    and Mamba-2 (their per-head state width); ``d_state``/``expand`` are Mamba-2's.
    """

    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    head_dim: int = 0
    d_ff: int = 0
    tie_embeddings: bool = False
    d_state: int = 64
    expand: int = 2
    conv_size: int = 4
    chunk_size: int = 64
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    init_std: float = 0.02

    def validate(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "d_state", "expand", "conv_size",
                     "chunk_size"):
            if getattr(self, name) < 1:
                raise ConvergentError(f"model.{name} must be a positive integer")
        if self.head_dim < 0 or self.d_ff < 0:
            raise ConvergentError("model.head_dim and model.d_ff must be >= 0 (0 = default)")
        if self.head_dim == 0 and self.d_model % self.n_heads:
            raise ConvergentError(
                f"model.d_model {self.d_model} is not divisible by model.n_heads {self.n_heads}"
            )


@dataclass(frozen=True)
class EmbeddingConfig:
    """Classical embeddings: word2vec (gensim) and PPMI + truncated SVD (scipy)."""

    dim: int = 100
    window: int = 5
    min_count: int = 5
    epochs: int = 5
    sg: bool = True
    negative: int = 5
    ppmi_alpha: float = 0.75
    workers: int = 1

    def validate(self) -> None:
        for name in ("dim", "window", "min_count", "epochs", "negative", "workers"):
            if getattr(self, name) < 1:
                raise ConvergentError(f"embedding.{name} must be a positive integer")
        if not 0 < self.ppmi_alpha <= 1:
            raise ConvergentError("embedding.ppmi_alpha must be in (0, 1]")


@dataclass(frozen=True)
class EngineConfig:
    """How a run is executed, not what is trained: device, precision, ranks, memory.

    ``device`` ``auto`` takes CUDA when it is available; ``precision`` ``auto`` is bf16
    autocast (with TF32 matmuls) on CUDA and fp32 on CPU. ``micro_batch`` is the rows per
    forward/backward on each rank (gradient accumulation; 0 = the rank's whole share of
    ``batch_size``). ``nproc`` ranks on this node run under torchrun (DDP, or FSDP2's
    ``fully_shard`` with ``fsdp``). A run may be resumed under another engine config.
    """

    device: str = "auto"
    precision: str = "auto"
    micro_batch: int = 0
    activation_checkpointing: bool = False
    nproc: int = 1
    fsdp: bool = False
    compile: bool = False

    def validate(self) -> None:
        if self.device not in DEVICES:
            raise ConvergentError(f"device {self.device!r}: choose one of {', '.join(DEVICES)}")
        if self.precision not in PRECISIONS:
            raise ConvergentError(
                f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.micro_batch < 0:
            raise ConvergentError("micro_batch must be >= 0 (0 = the whole batch at once)")
        if self.nproc < 1:
            raise ConvergentError(f"nproc must be a positive integer, got {self.nproc}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. Equal configs give bit-identical runs (same machine).

    ``data`` is a folder made by ``convergent data prepare`` (memmapped token shards and a
    manifest); when set, ``corpus``, ``tokenizer`` and ``vocab_size`` must match its
    manifest. ``tokenizer`` is ``bpe``, ``digit``, ``word`` (trained here) or a named
    tokenizer: ``hf:ORG/NAME`` (a hub or local Hugging Face tokenizer) or a
    ``tokenizer.json`` path.
    Budgets are in tokens: ``tokens`` (total), ``checkpoint_every`` (interval),
    ``warmup_tokens``. ``perturb`` is ``None``, ``swap``, ``unigram``, ``isolate-K`` or
    ``context-L`` (see :mod:`convergent.train.perturb`).
    """

    arch: str = "transformer"
    model: ModelConfig = field(default_factory=ModelConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    corpus: str = "bundled"
    data: str = ""
    tokenizer: str = "bpe"
    vocab_size: int = 4096
    perturb: str | None = None
    optimizer: str = "adamw"
    lr: float = 3e-3
    muon_lr: float = 0.0
    min_lr_ratio: float = 0.1
    schedule: str = "cosine"
    warmup_tokens: int = 50_000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    tokens: int = 1_000_000
    batch_size: int = 16
    seq_len: int = 128
    seed: int = 0
    checkpoint_every: int = 100_000
    max_documents: int = 0

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def total_steps(self) -> int:
        return max(1, self.tokens // self.tokens_per_step)

    @property
    def neural(self) -> bool:
        return self.arch in NEURAL_ARCHS

    def validate(self) -> TrainConfig:
        """Raise ConvergentError naming the first bad field; return self."""
        if self.arch not in ARCHS:
            raise ConvergentError(f"arch {self.arch!r}: choose one of {', '.join(ARCHS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConvergentError(
                f"optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.tokenizer not in TOKENIZERS and not is_named_tokenizer(self.tokenizer):
            raise ConvergentError(
                f"tokenizer {self.tokenizer!r}: choose one of {', '.join(TOKENIZERS)}, "
                "hf:ORG/NAME or a tokenizer.json path"
            )
        if self.schedule not in SCHEDULES:
            raise ConvergentError(
                f"schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}"
            )
        if self.max_documents < 0:
            raise ConvergentError("max_documents must be >= 0 (0 = all)")
        for name in ("vocab_size", "tokens", "batch_size", "seq_len", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConvergentError(
                    f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.lr <= 0 or self.muon_lr < 0:
            raise ConvergentError("lr must be > 0 and muon_lr >= 0 (0 = same as lr)")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConvergentError("min_lr_ratio must be in [0, 1]")
        if self.grad_clip < 0 or self.weight_decay < 0 or self.warmup_tokens < 0:
            raise ConvergentError("grad_clip, weight_decay and warmup_tokens must be >= 0")
        if self.vocab_size < 1200 and self.tokenizer == "bpe":
            raise ConvergentError(
                f"vocab_size {self.vocab_size}: the bpe tokenizer needs at least 1200 entries "
                "(1110 are the digit strings of length 1-3)"
            )
        if self.arch in CLASSICAL_ARCHS and self.engine.nproc > 1:
            raise ConvergentError(f"--nproc applies to neural models, not to {self.arch} "
                                  "(use embedding.workers for its CPU threads)")
        if self.arch in CLASSICAL_ARCHS and self.optimizer != "adamw":
            raise ConvergentError(f"--optimizer does not apply to {self.arch}")
        if self.neural and self.tokens < self.tokens_per_step:
            raise ConvergentError(
                f"tokens {self.tokens} is less than one step (batch_size x seq_len = "
                f"{self.tokens_per_step})"
            )
        from convergent.train.perturb import parse_perturbation

        parse_perturbation(self.perturb, self.arch)
        self.model.validate()
        self.embedding.validate()
        self.engine.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        nested = {"model": ModelConfig, "embedding": EmbeddingConfig, "engine": EngineConfig}
        for key, kind in nested.items():
            if key in data:
                data[key] = _build(kind, data[key], key)
        return _build(cls, data, "config")

    def save(self, path: str | Path) -> None:
        from convergent.io import write_json_atomic

        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConvergentError(f"{path}: cannot read the training config ({err})") from None
        if not isinstance(data, dict):
            raise ConvergentError(f"{path}: the training config is not a JSON object")
        return cls.from_dict(data)


def with_engine(config: TrainConfig, **options: Any) -> TrainConfig:
    """``config`` with the given engine fields (``device="cuda"``, ``nproc=8``); the engine
    is validated, the rest when the config is (a task sets its sequence length later)."""
    if not options:
        return config
    engine = replace(config.engine, **options)
    engine.validate()
    return config.replace(engine=engine)


def is_named_tokenizer(spec: str) -> bool:
    """A tokenizer given by name (``hf:ORG/NAME``) or file (``*.json``), not trained here."""
    return spec.startswith("hf:") or spec.endswith(".json")


def with_changes(config: TrainConfig, changes: dict[str, Any]) -> TrainConfig:
    """``config`` with dotted-key ``changes`` applied (``model.d_model``, ``lr``), validated.

    The string ``"none"`` sets a field to None (TOML and the command line have no null).
    """
    data = config.to_dict()
    for key, value in changes.items():
        *parents, last = key.split(".")
        target = data
        for part in parents:
            if not isinstance(target.get(part), dict):
                raise ConvergentError(f"{key!r} is not a config field")
            target = target[part]
        target[last] = None if value == "none" else value
    try:
        return TrainConfig.from_dict(data).validate()
    except TypeError as err:
        raise ConvergentError(f"bad config value: {err}") from None


def _build(kind: type, data: Any, where: str) -> Any:
    if isinstance(data, kind):
        return data
    if not isinstance(data, dict):
        raise ConvergentError(f"{where}: expected a JSON object")
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConvergentError(f"{where}: unknown field(s) {', '.join(unknown)}")
    return kind(**data)


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["model.d_model=256", "perturb=swap"]`` -> ``{"model.d_model": 256, ...}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConvergentError(f"--set {item!r}: expected KEY=VALUE, e.g. model.d_model=256")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out[key.strip()] = value
    return out
