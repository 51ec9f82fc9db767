"""The predictor interface over a Hugging Face causal LM (or a trained run's model).

f(x) is read by a pre-hook on the output embedding (``get_output_embeddings()``), so it is
exactly what the unembedding sees (after the final norm), never ``hidden_states[-1]``.
Contexts are batched by length (no padding, so no position or mask subtleties). A
reparameterized predictor swaps the output embedding for a module computing
(M (h + N tanh(R h))) . ((g + E) M^{-1} + c) in float64 during the forward pass, so the
KL check runs through the real model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.io import cache_root, write_bytes_atomic
from convergent.linearity.predictors import Context, Reparameterization


def _blocks(model: Any) -> Sequence[Any]:
    """The list of transformer blocks: the extraction site table, else common paths."""
    try:
        from convergent.extract.sites import site_table

        return site_table(model).blocks_of(model)
    except (ImportError, ConvergentError, AttributeError):
        pass
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers",
                 "backbone.layers", "layers", "blocks"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None and hasattr(obj, "__len__"):
            return obj
    raise ConvergentError(f"{type(model).__name__}: cannot find the transformer blocks")


_GROUP = 4  # batches per resumable unit of the state cache


class _StopForward(Exception):
    """Raised by a hook once the needed layer is captured (the rest is not computed)."""


class _Head:
    """A torch module factory (torch imported lazily) for the reparameterized unembedding."""

    @staticmethod
    def build(reparam: Reparameterization, g: np.ndarray, bias: np.ndarray | None) -> Any:
        import torch

        class TransformedHead(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                dbl = torch.float64
                self.m = torch.as_tensor(reparam.m, dtype=dbl)
                self.g = torch.as_tensor(reparam.apply_g(g), dtype=dbl)
                self.b = None if bias is None else torch.as_tensor(bias, dtype=dbl)
                self.n = (None if reparam.f_null is None
                          else torch.as_tensor(reparam.f_null, dtype=dbl))
                self.r = (None if reparam.f_mix is None
                          else torch.as_tensor(reparam.f_mix, dtype=dbl))
                self.last_f: Any = None

            def forward(self, h: Any) -> Any:
                x = h.to(torch.float64)
                if self.n is not None and self.r is not None:
                    x = x + torch.tanh(x @ self.r.T) @ self.n.T
                x = x @ self.m.T
                self.last_f = x
                out = x @ self.g.T
                return out if self.b is None else out + self.b

        return TransformedHead()


class HFPredictor:
    """A causal LM with tokenizer as a next-token predictor (eval mode, no gradients)."""

    def __init__(self, model: Any, tokenizer: Any, name: str = "model",
                 reparam: Reparameterization | None = None, batch_size: int = 64,
                 identity: Mapping[str, Any] | None = None) -> None:
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if head is None or not hasattr(head, "weight"):
            raise ConvergentError(f"{name}: the model has no output embedding (unembedding)")
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.reparam, self.batch_size = reparam, batch_size
        self.identity = None if identity is None else dict(identity)
        self._head = head
        self._g = head.weight.detach().to("cpu").double().numpy()
        hb = getattr(head, "bias", None)
        self._b = None if hb is None else hb.detach().to("cpu").double().numpy()
        self.vocab_size, self.dim = self._g.shape
        self._swap = None if reparam is None else _Head.build(reparam, self._g, self._b)
        import inspect

        params = inspect.signature(model.forward).parameters
        self._kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}

    # -- tokens -----------------------------------------------------------------------
    def word_tokens(self, word: str) -> Context:
        """Tokens of " word" (as inside text); empty if any is the unknown token."""
        ids = tuple(self.tokenizer.encode(" " + word, add_special_tokens=False))
        unk = getattr(self.tokenizer, "unk_token_id", None)
        return () if unk is not None and unk in ids else ids

    def encode(self, text: str) -> Context:
        ids = tuple(self.tokenizer.encode(text, add_special_tokens=False))
        bos = getattr(self.tokenizer, "bos_token_id", None)
        return ids if bos is None else (bos, *ids)

    # -- forward ----------------------------------------------------------------------
    def _batches(self, contexts: Sequence[Context]) -> Iterator[tuple[list[int], Any]]:
        import torch

        if any(len(c) == 0 for c in contexts):
            raise ConvergentError(f"{self.name}: empty context")
        by_len: dict[int, list[int]] = defaultdict(list)
        for i, c in enumerate(contexts):
            by_len[len(c)].append(i)
        for rows in by_len.values():
            for start in range(0, len(rows), self.batch_size):
                part = rows[start:start + self.batch_size]
                yield part, torch.tensor([list(contexts[i]) for i in part], dtype=torch.long)

    @contextmanager
    def _swapped(self) -> Iterator[None]:
        if self._swap is None:
            yield
            return
        model = self.model
        model.set_output_embeddings(self._swap)
        try:
            yield
        finally:
            model.set_output_embeddings(self._head)

    def _run(
        self, contexts: Sequence[Context], want: str,
        edit: Callable[[Any], Any] | None = None, layer: int | None = None,
    ) -> np.ndarray:
        """Forward passes; ``want`` = 'f' (head input), 'logits', or 'hidden' (block output)."""
        import torch

        captured: dict[str, Any] = {}
        hooks = []
        head = self._swap if self._swap is not None else self._head

        def on_head(_m: Any, args: Any) -> Any:
            if edit is None or layer is not None:
                captured["f"] = args[0][:, -1]
                return None
            hidden = args[0].clone()
            hidden[:, -1] = edit(hidden[:, -1])
            captured["f"] = hidden[:, -1]
            return (hidden, *args[1:])

        hooks.append(head.register_forward_pre_hook(on_head))
        if layer is not None:
            block = _blocks(self.model)[layer]

            def on_block(_m: Any, _a: Any, output: Any) -> Any:
                hidden = output[0] if isinstance(output, tuple) else output
                if edit is not None:
                    hidden = hidden.clone()
                    hidden[:, -1] = edit(hidden[:, -1])
                captured["hidden"] = hidden[:, -1]
                if want == "hidden":
                    raise _StopForward
                if edit is None:
                    return None
                return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

            hooks.append(block.register_forward_hook(on_block))
        out: np.ndarray | None = None
        try:
            with torch.no_grad(), self._swapped():
                batches = self._batches(contexts)
                if len(contexts) > 4 * self.batch_size:
                    from tqdm.auto import tqdm

                    total = -(-len(contexts) // self.batch_size)
                    batches = tqdm(batches, total=total, desc=f"{self.name}: {want}",
                                   leave=False)
                for rows, ids in batches:
                    try:
                        logits = self.model(input_ids=ids, **self._kwargs).logits[:, -1]
                    except _StopForward:
                        logits = None
                    if want == "f":
                        vals = captured["f"]
                        if self._swap is not None:
                            vals = self._swap.last_f[:, -1]
                    elif want == "hidden":
                        vals = captured["hidden"]
                    else:
                        vals = logits
                    vals = vals.double().numpy()
                    if out is None:
                        out = np.zeros((len(contexts), vals.shape[1]))
                    out[rows] = vals
        finally:
            for h in hooks:
                h.remove()
        assert out is not None
        return out

    def _cached(self, contexts: Sequence[Context], want: str,
                layer: int | None = None) -> np.ndarray:
        """States of the unmodified model, stored per batch under the cache folder when the
        model has an identity (weights hash): an interrupted run resumes at its last batch."""
        if self.identity is None or self.reparam is not None:
            return self._run(contexts, want, layer=layer)
        import hashlib
        import json

        key = json.dumps([self.identity, want, layer, self.batch_size, _GROUP, list(contexts)],
                         sort_keys=True, default=str)
        folder = cache_root() / "linearity" / hashlib.sha256(key.encode()).hexdigest()[:20]
        groups: Any = list(self._groups(contexts))
        if len(groups) > 2:
            from tqdm.auto import tqdm

            groups = tqdm(groups, desc=f"{self.name}: {want}", leave=False)
        out: np.ndarray | None = None
        for i, rows in enumerate(groups):
            file = folder / f"batch-{i:05d}.npy"
            vals = np.load(file) if file.is_file() else None
            if vals is None or vals.shape[0] != len(rows):
                vals = self._run([contexts[r] for r in rows], want, layer=layer)
                write_bytes_atomic(file, lambda h, v=vals: np.save(h, v))
            if out is None:
                out = np.zeros((len(contexts), vals.shape[1]))
            out[rows] = vals
        assert out is not None
        return out

    def _groups(self, contexts: Sequence[Context]) -> Iterator[list[int]]:
        """Rows per resumable unit: 4 batches of equal-length contexts."""
        by_len: dict[int, list[int]] = defaultdict(list)
        for i, c in enumerate(contexts):
            by_len[len(c)].append(i)
        step = _GROUP * self.batch_size
        for rows in by_len.values():
            for start in range(0, len(rows), step):
                yield rows[start:start + step]

    def f(self, contexts: Sequence[Context]) -> np.ndarray:
        return self._cached(contexts, "f")

    def hidden(self, contexts: Sequence[Context], layer: int) -> np.ndarray:
        """Residual stream after block ``layer`` at the last position."""
        return self._cached(contexts, "hidden", layer=layer)

    def g(self) -> np.ndarray:
        return self._g if self.reparam is None else self.reparam.apply_g(self._g)

    def bias(self) -> np.ndarray | None:
        return self._b

    def logits(self, contexts: Sequence[Context]) -> np.ndarray:
        return self._run(contexts, "logits")

    def steered_logits(self, contexts: Sequence[Context], layer: int | None,
                       vector: np.ndarray) -> np.ndarray:
        """Logits after adding ``vector`` at the last position to the residual stream after
        block ``layer``, or (``layer=None``) to f(x), the input of the unembedding."""
        import torch

        v = torch.as_tensor(vector)

        def add(h: Any) -> Any:
            return h + v.to(h.dtype)

        return self._run(contexts, "logits", edit=add, layer=layer)

    @property
    def n_layers(self) -> int:
        return len(_blocks(self.model))

    def transformed(self, reparam: Reparameterization) -> HFPredictor:
        if self.reparam is not None:
            raise ConvergentError(f"{self.name}: already reparameterized")
        return HFPredictor(self.model, self.tokenizer, f"{self.name}~", reparam, self.batch_size,
                           self.identity)
