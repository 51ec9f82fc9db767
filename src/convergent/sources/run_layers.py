"""Contextual sites of a trained network: ``layer.{i}`` and ``final_norm`` of a checkpoint.

The checkpoint's model is rebuilt from the run's config, loaded strictly, and run through
the same extraction engine as Hugging Face models (:mod:`convergent.extract.engine`):
each number is placed in every template, the residual stream after block ``i`` (or the
final norm's output) is taken at the number's last token (``pooling="last"``) or averaged
over its tokens, then averaged over templates. Nothing is cached on disk: the models
trained here are small enough that a pass takes seconds.

``layer.{i}`` is the output of block ``i`` (Transformer and Gated DeltaNet: attention or
mixer plus MLP; Mamba-2: one mixer with its residual; LSTM: layer ``i`` of the stack, run
as a one-layer LSTM with that layer's weights, which is exactly what the stack computes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from convergent.errors import ConvergentError
from convergent.extract.sites import SiteTable
from convergent.train.models.common import LanguageModel
from convergent.train.models.lstm import LSTMStack


@dataclass(frozen=True)
class RunExtraction:
    """Options of contextual extraction from a run (None: the engine's defaults)."""

    templates: tuple[str, ...] | None = None
    pooling: str = "last"
    batch_size: int = 64

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> RunExtraction:
        given = {k: v for k, v in options.items() if v is not None}
        if isinstance(given.get("templates"), str):
            given["templates"] = (given["templates"],)
        if "templates" in given:
            given["templates"] = tuple(given["templates"])
        return cls(**given)


class OutputOnly(nn.Module):
    """An ``nn.LSTM`` that returns its output sequence only."""

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        self.lstm = lstm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


def lstm_layers(stack: LSTMStack) -> list[nn.Module]:
    """One single-layer LSTM per layer of ``stack``, sharing its weights."""
    lstm = stack.lstm
    layers: list[nn.Module] = []
    for k in range(lstm.num_layers):
        one = nn.LSTM(lstm.input_size if k == 0 else lstm.hidden_size, lstm.hidden_size, 1,
                      batch_first=True)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(one, f"{name}_l0", getattr(lstm, f"{name}_l{k}"))
        layers.append(OutputOnly(one))
    return layers


class Trunk(nn.Module):
    """embed -> blocks (one entry per layer) -> norm, without the LM head."""

    def __init__(self, model: LanguageModel) -> None:
        super().__init__()
        self.embed, self.norm = model.embed, model.norm
        blocks = model.blocks
        self.blocks = nn.ModuleList(lstm_layers(blocks) if isinstance(blocks, LSTMStack)
                                    else list(blocks))

    def forward(self, input_ids: torch.Tensor, attention_mask: Any = None) -> torch.Tensor:
        # Right padding: a causal or recurrent model's state at a real token never sees the
        # pads after it, so the mask is not needed.
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class EngineModel(nn.Module):
    """A run's model shaped as the extraction engine expects (``base_model``, ``config``)."""

    def __init__(self, model: LanguageModel, arch: str) -> None:
        super().__init__()
        self.base_model = Trunk(model)
        self.config = SimpleNamespace(model_type=f"convergent-{arch}",
                                      hidden_size=model.config.d_model)


def site_table(arch: str) -> SiteTable:
    return SiteTable(f"convergent-{arch}", embed="embed", blocks="blocks", final_norm="norm",
                     unembed=None)


def load_network(folder: Path, config: dict[str, Any], vocab_size: int) -> LanguageModel:
    """The checkpoint's model, rebuilt from the run config and loaded strictly."""
    from convergent.train.checkpoint import load_tensors
    from convergent.train.config import TrainConfig
    from convergent.train.models import build_model

    train_config = TrainConfig.from_dict(config)
    with torch.random.fork_rng():
        model = build_model(train_config.arch, train_config.model, vocab_size)
    weights = load_tensors(folder / "model.safetensors")
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ConvergentError(f"{folder}: the weights do not fit the run's config ({first})") \
            from None
    return model.eval()


@dataclass(frozen=True)
class ContextStates:
    """States at the numbers in context: one [n, d] float32 array per site."""

    numbers: list[int]
    token_ids: list[tuple[int, ...]]
    rows: dict[str, Any]
    pooling: str
    templates: tuple[str, ...]


def contextual_rows(folder: Path, config: dict[str, Any], tokenizer: Any,
                    numbers: Sequence[int], sites: Sequence[str],
                    options: RunExtraction) -> ContextStates:
    """The states at ``sites`` of every number the tokenizer writes (without [UNK])."""
    from transformers import PreTrainedTokenizerFast

    from convergent.extract.engine import Engine, EngineConfig, item_tokens
    from convergent.extract.templates import check_templates

    arch = str(config.get("arch"))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer)
    unknown = tokenizer.token_to_id("[UNK]")
    items = [str(n) for n in numbers]
    own = item_tokens(fast, items)
    kept = [i for i, ids in enumerate(own) if ids and unknown not in ids]
    if not kept:
        raise ConvergentError(f"{folder}: the run's tokenizer writes none of the numbers")
    model = load_network(folder, config, tokenizer.get_vocab_size())
    engine_config = EngineConfig(
        sites=tuple(sites), templates=check_templates(options.templates, "numbers"),
        kind="numbers", pooling=options.pooling, batch_size=int(options.batch_size))
    engine = Engine(EngineModel(model, arch).eval(), fast, site_table(arch), engine_config)
    rows = engine.contextual_rows([items[i] for i in kept])
    return ContextStates([int(numbers[i]) for i in kept], [own[i] for i in kept],
                         {site: rows[site].float().numpy() for site in sites},
                         options.pooling, engine_config.templates)
