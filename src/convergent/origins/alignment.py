"""Alignment of matched concepts' embedding and unembedding directions in a real LM.

Jiang et al. (2024) predict, and check on LLaMA-2, that a concept's direction in the input
embedding (the normalized mean of e(target) - e(base) over its single-token word pairs)
aligns with its direction in the unembedding (the same with g, Park et al. 2024), and that
unrelated concepts' directions do not. Measured here per concept, Euclidean and under the
causal inner product (g -> Cov(g)^-1/2 g, e -> Cov(g)^1/2 e, as in the simulation):

- ``matched``: cos(e-direction of concept i, g-direction of concept i);
- ``cross`` [m, m]: cos(e-direction i, g-direction j), off the diagonal unrelated concepts;
- ``within_embed`` / ``within_unembed``: each side's within-concept cosine (are the pair
  differences parallel at all? without that there is no direction to align);
- ``null``: the same cosine for random token pairs (as many as the concept has, drawn from
  the whole vocabulary, or with ``null_pool="concept-words"`` from the words of the kept
  pairs, which matches their frequency), ``draws`` times. It measures what any two tokens'
  difference gives, i.e. token-level similarity of e and g or a global linear relation
  between them (shared initialization, co-trained rows);
  ``p_value`` is the share of draws whose mean over concepts reaches the matched mean.

A model whose unembedding *is* its embedding (tied weights, SmolLM2) has every matched
cosine 1 by construction: such a model is reported as degenerate and not scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.origins.metrics import (
    causal_whitening,
    mean_abs_offdiagonal,
    unit_rows,
    within_cosine,
)
from convergent.origins.real_lm import Pairs, concept_token_pairs

DRAWS = 200
NULL_POOLS = ("vocabulary", "concept-words")


@dataclass(frozen=True, eq=False)
class AlignmentResult:
    """Embedding-unembedding alignment per concept (empty arrays when ``degenerate``)."""

    source: str
    degenerate: str | None  # why the model cannot be scored (tied weights), else None
    dim: int
    concepts: tuple[str, ...] = ()
    pairs: tuple[int, ...] = ()
    matched_euclid: np.ndarray = field(default_factory=lambda: np.zeros(0))
    matched_causal: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cross_euclid: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    cross_causal: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    null_euclid: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [draws, m]
    null_causal: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    within_embed: np.ndarray = field(default_factory=lambda: np.zeros(0))
    within_unembed: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, float | None]:
        if self.degenerate:
            return {}
        out: dict[str, float | None] = {
            "within_embed_mean": float(np.mean(self.within_embed)),
            "within_unembed_mean": float(np.mean(self.within_unembed))}
        for name, matched, cross, null in (
                ("euclid", self.matched_euclid, self.cross_euclid, self.null_euclid),
                ("causal", self.matched_causal, self.cross_causal, self.null_causal)):
            mean = float(np.mean(matched))
            draws = null.mean(axis=1)
            out[f"matched_{name}_mean"] = mean
            out[f"unmatched_{name}_mean_abs"] = mean_abs_offdiagonal(cross)
            out[f"null_{name}_mean"] = float(draws.mean())
            out[f"null_{name}_sd"] = float(draws.std())
            out[f"p_value_{name}"] = float((1 + np.sum(draws >= mean)) / (1 + draws.size))
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "origins-alignment", "source": self.source,
                               "degenerate": self.degenerate, "scored": not self.degenerate,
                               "dim": self.dim, "seed": self.seed, "meta": self.meta,
                               "summary": self.summary()}
        if self.degenerate:
            return out
        return {**out, "concepts": list(self.concepts), "pairs": list(self.pairs),
                "matched_euclid": self.matched_euclid.tolist(),
                "matched_causal": self.matched_causal.tolist(),
                "cross_euclid": self.cross_euclid.tolist(),
                "cross_causal": self.cross_causal.tolist(),
                "null_euclid_mean": self.null_euclid.mean(axis=0).tolist(),
                "null_causal_mean": self.null_causal.mean(axis=0).tolist(),
                "within_embed": self.within_embed.tolist(),
                "within_unembed": self.within_unembed.tolist(),
                "draws": int(self.null_euclid.shape[0])}


def _directions(rows: np.ndarray, base: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Unit mean differences [..., d] of (base, target) index arrays [..., k]."""
    return unit_rows((rows[target] - rows[base]).mean(axis=-2))


def embedding_alignment(embedding: np.ndarray, unembedding: np.ndarray,
                        token_strings: list[str], pairs: Pairs, *, source: str = "lm",
                        tied: bool | None = None, draws: int = DRAWS, seed: int = 0,
                        null_pool: str = "vocabulary",
                        meta: Mapping[str, Any] | None = None) -> AlignmentResult:
    """Alignment of each concept's embedding and unembedding directions (rows = tokens).

    ``tied`` says whether the model ties the two (None: they are tied if equal).
    """
    e = np.asarray(embedding, dtype=np.float64)
    g = np.asarray(unembedding, dtype=np.float64)
    if e.ndim != 2 or e.shape != g.shape or e.shape[0] != len(token_strings):
        raise ConvergentError(
            f"{source}: embedding {e.shape} and unembedding {g.shape} must both be "
            f"[{len(token_strings)} tokens, d] in the same space")
    if draws < 1:
        raise ConvergentError(f"draws {draws}: need at least one null draw")
    if null_pool not in NULL_POOLS:
        raise ConvergentError(f"null_pool {null_pool!r}: choose one of {', '.join(NULL_POOLS)}")
    tied = bool(np.array_equal(e, g)) if tied is None else tied
    info = {"tied": tied, "vocabulary_size": int(g.shape[0]), "null_pool": null_pool,
            **dict(meta or {})}
    if tied:
        return AlignmentResult(source, "tied embeddings: the unembedding is the embedding, so "
                               "every matched cosine is 1 by construction", int(g.shape[1]),
                               seed=seed, meta=info)
    names, token_pairs, kept, dropped = concept_token_pairs(token_strings, pairs, source)
    info.update(pairs_kept=kept, pairs_dropped=dropped)
    white = causal_whitening(g)
    spaces = {"euclid": (e, g), "causal": (white.embed(e), white.unembed(g))}
    pool = np.arange(g.shape[0]) if null_pool == "vocabulary" else \
        np.unique(np.concatenate([np.concatenate(p) for p in token_pairs]))
    rng = np.random.default_rng(seed)
    results: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    nulls = [_null_pairs(rng, pool, len(b), draws) for b, _ in token_pairs]
    for space, (ee, gg) in spaces.items():
        e_dirs = np.stack([_directions(ee, b, t) for b, t in token_pairs])
        g_dirs = np.stack([_directions(gg, b, t) for b, t in token_pairs])
        cross = e_dirs @ g_dirs.T
        null = np.stack([np.einsum("rd,rd->r", _directions(ee, nb, nt), _directions(gg, nb, nt))
                         for nb, nt in nulls], axis=1)
        results[space] = (np.diag(cross).copy(), cross, null)
    return AlignmentResult(
        source, None, int(g.shape[1]), tuple(names), tuple(len(b) for b, _ in token_pairs),
        results["euclid"][0], results["causal"][0], results["euclid"][1],
        results["causal"][1], results["euclid"][2], results["causal"][2],
        np.array([within_cosine(e[t] - e[b]) for b, t in token_pairs]),
        np.array([within_cosine(g[t] - g[b]) for b, t in token_pairs]), seed, info)


def _null_pairs(rng: np.random.Generator, pool: np.ndarray, k: int,
                draws: int) -> tuple[np.ndarray, np.ndarray]:
    """``draws`` sets of ``k`` random (base, target) pairs of distinct pool tokens [draws, k]
    (``pool`` sorted)."""
    base = rng.choice(pool, size=(draws, k))
    shift = rng.integers(1, pool.size, size=(draws, k))
    index = np.searchsorted(pool, base)
    return base, pool[(index + shift) % pool.size]


def open_embeddings(spec: str) -> tuple[np.ndarray, np.ndarray, list[str], str, bool]:
    """(embedding, unembedding, token strings, name, tied) of a run folder (neural, or
    word2vec/PPMI: word and context vectors) or an HF model."""
    from convergent.sources import open_source
    from convergent.sources.hf import HFSource
    from convergent.sources.trained import RunSource

    source = open_source(spec)
    if isinstance(source, RunSource):  # neural weights, or word2vec/PPMI word and context
        e, g, tokens, tied = source.embeddings()
        return e.astype(np.float32), g.astype(np.float32), tokens, source.name, tied
    if isinstance(source, HFSource):
        model, tokenizer = source.load_model()
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if out is None:
            raise ConvergentError(f"{spec}: {type(model).__name__} has no output embedding "
                                  "(an encoder); use a language model")
        e = model.get_input_embeddings().weight.detach().float().cpu().numpy()
        g = out.weight.detach().float().cpu().numpy()
        tokens = tokenizer.convert_ids_to_tokens(list(range(g.shape[0])))
        return e, g, [str(t) for t in tokens], source.name, source.tied_embeddings()
    raise ConvergentError(f"{spec}: not a language model with an embedding and an "
                          "unembedding (use a run folder, hf:DIR or smollm2-135m)")
