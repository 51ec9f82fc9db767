"""The extraction engine: batched forward passes with hooks that keep only what is asked.

For one chunk of items the engine places each item in every template, tokenizes, sorts
the contexts by length, pads them on the right with an attention mask and runs
``model.base_model`` (never the LM head, so no logits). Forward hooks on the requested
blocks (and the final norm) pool each block's output at the item's tokens right away
(last token, or mean over them), move the pooled [batch, d] rows off the device, and the
hook of the last needed module stops the forward pass (blocks after it never run).
Per-item vectors are averaged over templates. Causal models see each context only up to
the item's last token, since later tokens cannot change the state there.

Right padding keeps batched results equal to unbatched ones for causal models (padding
comes after every real token) and for encoders (the attention mask hides it); recurrent
models (Mamba) get the same guarantee because their state at a real token never sees a
pad. Memory is O(batch x length x width) for the forward plus O(chunk x width) per site.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from convergent.errors import ConvergentError
from convergent.extract.sites import SiteTable, layer_index
from convergent.extract.templates import Encoded, encode, own_tokens, render

POOLINGS = ("last", "mean")
DTYPES = ("float32", "float16", "bfloat16")


class _StopForward(Exception):
    """Raised by the hook of the last needed module to skip the rest of the model."""


@dataclass(frozen=True)
class EngineConfig:
    """What to extract: canonical sites, templates, pooling, batch size, storage dtype."""

    sites: tuple[str, ...]
    templates: tuple[str, ...]
    kind: str = "numbers"
    pooling: str = "last"
    batch_size: int = 64
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ConvergentError(f"--pooling {self.pooling!r}: expected one of {POOLINGS}")
        if self.dtype not in DTYPES:
            raise ConvergentError(f"--dtype {self.dtype!r}: expected one of {DTYPES}")
        if self.batch_size < 1:
            raise ConvergentError(f"--batch-size {self.batch_size}: must be at least 1")

    @property
    def contextual(self) -> tuple[str, ...]:
        return tuple(s for s in self.sites if s not in ("embed", "unembed"))


class Engine:
    """Extract the configured sites for chunks of items from one loaded model."""

    def __init__(self, model: Any, tokenizer: Any, table: SiteTable, config: EngineConfig):
        self.model, self.tokenizer, self.table, self.config = model, tokenizer, table, config
        self.device = next(model.parameters()).device
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = int(pad) if pad is not None else 0
        params = inspect.signature(model.base_model.forward).parameters
        self.extra = {"use_cache": False} if "use_cache" in params else {}
        self.on_batch: Callable[[int], None] | None = None  # called with contexts done

    def widths(self) -> dict[str, int]:
        """Width of every configured site (for the disk estimate)."""
        embed = int(self.table.embed_of(self.model).weight.shape[1])
        hidden = int(getattr(self.model.config, "hidden_size", embed))
        out = {}
        for site in self.config.sites:
            if site == "unembed":
                out[site] = int(self.table.unembed_of(self.model).weight.shape[1])
            else:
                out[site] = embed if site == "embed" else hidden
        return out

    # -- static sites -------------------------------------------------------------------
    def static_rows(self, site: str, token_ids: Sequence[Sequence[int]]) -> Any:
        """Rows of the input (``embed``) or output (``unembed``) embedding at the item's own
        tokens, pooled like the contextual sites: ``last`` takes the last token's row (every
        number ending in the same token shares it), ``mean`` averages the rows (a bag of
        tokens: with a digit tokenizer 12 and 21 coincide). Single-token items: the row."""
        module = self.table.embed_of(self.model) if site == "embed" else \
            self.table.unembed_of(self.model)
        weight = module.weight.detach()
        rows = []
        for ids in token_ids:
            picked = weight[list(ids)].float()
            rows.append(picked[-1] if self.config.pooling == "last" else picked.mean(0))
        return _cast(_stack(rows, weight.shape[1]), self.config.dtype)

    # -- contextual sites ---------------------------------------------------------------
    def contexts(self, items: Sequence[str]) -> list[tuple[int, Encoded]]:
        """(item index, encoded context) for every item in every template."""
        out = []
        for i, item in enumerate(items):
            for template in self.config.templates:
                text, span = render(template, item, self.config.kind)
                enc = encode(self.tokenizer, text, span)
                if self.table.causal:
                    enc = Encoded(enc.ids[: enc.positions[-1] + 1], enc.positions)
                out.append((i, enc))
        return out

    def contextual_rows(self, items: Sequence[str]) -> dict[str, Any]:
        """Template-averaged states at the items' tokens, one [n, d] array per site."""
        import torch

        sites = self.config.contextual
        if not sites:
            return {}
        contexts = self.contexts(items)
        order = sorted(range(len(contexts)), key=lambda k: -len(contexts[k][1].ids))
        sums: dict[str, Any] = {}
        with self._hooks(sites) as captured, torch.inference_mode():
            for start in range(0, len(order), self.config.batch_size):
                batch = [contexts[k] for k in order[start:start + self.config.batch_size]]
                ids, mask, weights = self._batch(batch)
                captured.clear()
                captured["weights"] = weights
                with suppress(_StopForward):
                    self.model.base_model(input_ids=ids, attention_mask=mask, **self.extra)
                if self.on_batch is not None:
                    self.on_batch(len(batch))
                index = torch.tensor([i for i, _ in batch], dtype=torch.long)
                for site in sites:
                    pooled = captured[site]
                    if site not in sums:
                        sums[site] = torch.zeros(len(items), pooled.shape[1])
                    sums[site].index_add_(0, index, pooled)
        scale = 1.0 / len(self.config.templates)
        return {s: _cast(sums[s] * scale, self.config.dtype) for s in sites}

    def _batch(self, batch: Sequence[tuple[int, Encoded]]) -> tuple[Any, Any, Any]:
        import torch

        length = max(len(enc.ids) for _, enc in batch)
        ids = torch.full((len(batch), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), length), dtype=torch.long)
        weights = torch.zeros((len(batch), length), dtype=torch.float32)
        for row, (_, enc) in enumerate(batch):
            ids[row, : len(enc.ids)] = torch.tensor(enc.ids)
            mask[row, : len(enc.ids)] = 1
            if self.config.pooling == "last":
                weights[row, enc.positions[-1]] = 1.0
            else:
                weights[row, list(enc.positions)] = 1.0 / len(enc.positions)
        return ids.to(self.device), mask.to(self.device), weights.to(self.device)

    @contextmanager
    def _hooks(self, sites: Sequence[str]) -> Any:
        """Register pooling hooks on the modules of ``sites``; the last one stops the pass."""
        blocks = self.table.blocks_of(self.model)
        modules = []
        for site in sites:
            idx = layer_index(site)
            modules.append((site, blocks[idx] if idx is not None
                            else self.table.final_norm_of(self.model)))
        order = {id(m): k for k, m in enumerate(blocks)}
        last = max(modules, key=lambda sm: order.get(id(sm[1]), len(blocks)))[0]
        captured: dict[str, Any] = {}
        handles = [m.register_forward_hook(self._hook(site, captured, site == last))
                   for site, m in modules]
        try:
            yield captured
        finally:
            for handle in handles:
                handle.remove()

    @staticmethod
    def _hook(site: str, captured: dict[str, Any], stop: bool) -> Any:
        def hook(module: Any, inputs: Any, output: Any) -> None:
            hidden = output[0] if isinstance(output, tuple | list) else output
            weights = captured["weights"].to(device=hidden.device, dtype=hidden.dtype)
            pooled = (weights.unsqueeze(1) @ hidden).squeeze(1)
            captured[site] = pooled.float().cpu()
            if stop:
                raise _StopForward

        return hook

    # -- both -------------------------------------------------------------------------
    def run(self, items: Sequence[str], token_ids: Sequence[Sequence[int]]) -> dict[str, Any]:
        """Every configured site for ``items`` (whose own tokens are ``token_ids``)."""
        out = self.contextual_rows(items)
        for site in ("embed", "unembed"):
            if site in self.config.sites:
                out[site] = self.static_rows(site, token_ids)
        return {s: out[s] for s in self.config.sites}


def item_tokens(tokenizer: Any, items: Sequence[str]) -> list[tuple[int, ...]]:
    """The own tokens of every item (see :func:`convergent.extract.templates.own_tokens`)."""
    return [own_tokens(tokenizer, item) for item in items]


def _stack(rows: list[Any], width: int) -> Any:
    import torch

    return torch.stack(rows) if rows else torch.zeros(0, width)


def _cast(tensor: Any, dtype: str) -> Any:
    """A contiguous CPU tensor in the storage dtype."""
    import torch

    return tensor.to(device="cpu", dtype=getattr(torch, dtype)).contiguous()
