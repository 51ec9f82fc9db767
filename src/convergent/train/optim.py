"""Optimizers and the learning-rate schedule.

``adamw``: AdamW on everything (weight decay on matrices, embeddings and convolutions; none
on norms, biases and per-head scalars). ``muon``: ``torch.optim.Muon`` on the 2-D hidden
weights (every matrix except the input embedding and the output head), AdamW on the rest,
as in the paper. Muon's update is RMS-matched to AdamW (``adjust_lr_fn="match_rms_adamw"``)
so one learning rate serves both unless ``muon_lr`` is set. Muon is
:class:`convergent.train.muon.Muon`: torch's, with a float32 Newton-Schulz step on CPU
(4.5-6x faster there than torch's bfloat16 one; unchanged on CUDA).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from convergent.train.config import TrainConfig

EDGE_WEIGHTS = ("embed.weight", "head.weight")


class Optimizers:
    """Several optimizers stepped together; the schedule scales each group's base lr."""

    def __init__(self, parts: dict[str, torch.optim.Optimizer]) -> None:
        self.parts = parts
        for opt in parts.values():
            for group in opt.param_groups:
                group.setdefault("base_lr", group["lr"])

    def __iter__(self) -> Iterator[tuple[str, torch.optim.Optimizer]]:
        return iter(self.parts.items())

    def set_lr(self, factor: float) -> None:
        for opt in self.parts.values():
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * factor

    def zero_grad(self) -> None:
        for opt in self.parts.values():
            opt.zero_grad(set_to_none=True)

    def step(self) -> None:
        for opt in self.parts.values():
            opt.step()

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors for safetensors, the JSON-able rest) of every optimizer's state."""
        tensors: dict[str, torch.Tensor] = {}
        rest: dict[str, Any] = {}
        for name, opt in self.parts.items():
            state = opt.state_dict()
            plain: dict[str, Any] = {}
            for index, slots in state["state"].items():
                for slot, value in slots.items():
                    if isinstance(value, torch.Tensor):
                        tensors[f"{name}/{index}/{slot}"] = value.detach().clone().contiguous()
                    else:
                        plain.setdefault(str(index), {})[slot] = value
            rest[name] = {"state": plain, "param_groups": state["param_groups"]}
        return tensors, rest

    def load_state(self, tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> None:
        for name, opt in self.parts.items():
            state: dict[int, dict[str, Any]] = {}
            for index, slots in rest[name]["state"].items():
                state.setdefault(int(index), {}).update(slots)
            for key, value in tensors.items():
                part, index, slot = key.split("/")
                if part == name:
                    state.setdefault(int(index), {})[slot] = value
            opt.load_state_dict({"state": state, "param_groups": rest[name]["param_groups"]})


def split_parameters(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Named parameters by role: ``hidden_matrix``, ``edge`` (embed/head), ``other``."""
    roles: dict[str, list[tuple[str, nn.Parameter]]] = {"hidden_matrix": [], "edge": [],
                                                        "other": []}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name in EDGE_WEIGHTS:
            roles["edge"].append((name, param))
        elif param.ndim == 2:
            roles["hidden_matrix"].append((name, param))
        else:
            roles["other"].append((name, param))
    return roles


def build_optimizers(model: nn.Module, config: TrainConfig) -> Optimizers:
    roles = split_parameters(model)
    decayed = [p for _, p in roles["edge"]] + [p for _, p in roles["other"] if p.ndim >= 2]
    plain = [p for _, p in roles["other"] if p.ndim < 2]
    hidden = [p for _, p in roles["hidden_matrix"]]
    betas = (config.beta1, config.beta2)
    adam_groups = [{"params": decayed, "weight_decay": config.weight_decay},
                   {"params": plain, "weight_decay": 0.0}]
    parts: dict[str, torch.optim.Optimizer] = {}
    if config.optimizer == "muon" and hidden:
        from convergent.train.muon import Muon, replicated_group

        parts["muon"] = Muon(
            hidden, lr=config.muon_lr or config.lr, weight_decay=config.weight_decay,
            adjust_lr_fn="match_rms_adamw", process_group=replicated_group(),
        )
    else:
        adam_groups[0]["params"] = decayed + hidden
    groups = [g for g in adam_groups if g["params"]]
    parts["adamw"] = torch.optim.AdamW(groups, lr=config.lr, betas=betas, eps=1e-8,
                                       fused=_fusable(groups) or None)
    return Optimizers(parts)


def _fusable(groups: list[dict[str, Any]]) -> bool:
    """Whether AdamW can use its fused CUDA kernel: every parameter a plain CUDA tensor."""
    from torch.distributed.tensor import DTensor

    params = [p for g in groups for p in g["params"]]
    return bool(params) and all(p.is_cuda and not isinstance(p, DTensor) for p in params)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up over ``warmup_tokens``, then cosine/linear decay to ``min_lr_ratio``."""
    warmup = config.warmup_tokens // config.tokens_per_step
    total = config.total_steps
    if warmup and step < warmup:
        return (step + 1) / warmup
    if config.schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if config.schedule == "cosine" \
        else 1 - progress
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * shape
