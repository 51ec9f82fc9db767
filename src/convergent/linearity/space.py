"""Gather the vectors of a pair set from a source: per relation, subject and object rows in
the output space g (unembedding rows, or the word vectors) and the input space f (context
embeddings of the word, a layer's residual state, or the word vectors).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.linearity.pairs import (
    MIN_PAIRS,
    FilterReport,
    PairSet,
    check_min_pairs,
    filter_pairs,
)
from convergent.linearity.predictors import Context, Predictor, Reparameterization

TOKEN_POLICIES = ("single", "last", "mean")


@dataclass(frozen=True, eq=False)
class RelationSpace:
    """Per relation, rows aligned with the pairs: g_* output space, f_* input space.

    ``reference_g``/``reference_f``: the rows whose covariance defines the causal/whitened
    inner products (the whole unembedding for an LM; the vocabulary for word vectors; the
    context embeddings of every pair word for f).
    """

    source: str
    pairs: PairSet
    g_sub: Mapping[str, np.ndarray]
    g_obj: Mapping[str, np.ndarray]
    f_sub: Mapping[str, np.ndarray]
    f_obj: Mapping[str, np.ndarray]
    reference_g: np.ndarray
    reference_f: np.ndarray
    same_space: bool
    g_name: str
    f_name: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    tokens: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def objects(self) -> dict[str, list[str]]:
        return {r: [o for _, o in ps] for r, ps in self.pairs.relations.items()}

    @property
    def subjects(self) -> dict[str, list[str]]:
        return {r: [s for s, _ in ps] for r, ps in self.pairs.relations.items()}

    def describe(self) -> dict[str, Any]:
        return {"output": self.g_name, "input": self.f_name, "same_space": self.same_space,
                "dim": int(self.reference_g.shape[1]), **dict(self.meta)}


def _split(pairs: PairSet, rows: Mapping[str, np.ndarray]) -> tuple[dict, dict]:
    sub = {r: np.stack([rows[s] for s, _ in ps]) for r, ps in pairs.relations.items()}
    obj = {r: np.stack([rows[o] for _, o in ps]) for r, ps in pairs.relations.items()}
    return sub, obj


def static_space(
    source: Any, pairs: PairSet, min_pairs: int = MIN_PAIRS, max_pairs: int | None = None,
) -> tuple[RelationSpace, FilterReport]:
    """Word vectors (``word_rows``): f = g = the word's vector; words missing in the
    vocabulary are tried lowercased (GloVe is uncased), else dropped; pairs whose two words
    fold to one vector (``apple -> Apple``) are dropped as degenerate."""
    check_min_pairs(min_pairs)
    vocab = getattr(source, "vocab", None)
    if vocab is None or not hasattr(source, "word_rows"):
        raise ConvergentError(f"{getattr(source, 'name', source)}: not a word-vector source")
    key = {}
    for w in pairs.words:
        key[w] = w if w in vocab else (w.lower() if w.lower() in vocab else None)
    kept, report = filter_pairs(
        pairs, lambda w: None if key[w] else "not in the vocabulary",
        "in the vocabulary (lowercased if needed)", min_pairs, max_pairs,
        key=key.__getitem__, same_key="identical vectors after lower-casing",
    )
    words = kept.words
    present, vecs = source.word_rows([key[w] for w in words])
    rows = dict(zip(words, vecs, strict=True))
    assert len(present) == len(words)
    sub, obj = _split(kept, rows)
    table = np.ascontiguousarray(source.vectors)  # one row-major copy (GloVe is column-major)
    space = RelationSpace(
        source.name, kept, sub, obj, sub, obj, table, table, True, "embed", "embed",
        {"kind": "static", "vocabulary": len(vocab)},
    )
    return space, report


def _token_reason(predictor: Predictor, policy: str) -> tuple[dict[str, Context], Any]:
    cache: dict[str, Context] = {}

    def reason(word: str) -> str | None:
        ids = cache.setdefault(word, predictor.word_tokens(word))
        if not ids:
            return "unknown to the tokenizer"
        if policy == "single" and len(ids) > 1:
            return "several tokens"
        return None

    return cache, reason


def predictor_space(
    predictor: Predictor,
    pairs: PairSet,
    site: str = "final",
    tokens: str = "single",
    min_pairs: int = MIN_PAIRS,
    max_pairs: int | None = None,
) -> tuple[RelationSpace, FilterReport]:
    """g = unembedding rows of the word's token(s); f = the state at the word's last token in
    the context BOS + word (``site`` 'final' = the unembedding input f(x), or 'layer.K'), or
    with ``site='unembed'`` the subject's own unembedding row (same space as the objects).

    ``tokens``: 'single' keeps single-token words only (Park et al.); 'last' uses the last
    token's unembedding row, 'mean' the mean of the word's token rows.
    """
    if tokens not in TOKEN_POLICIES:
        raise ConvergentError(f"--tokens {tokens}: expected one of {', '.join(TOKEN_POLICIES)}")
    check_min_pairs(min_pairs)
    layer = parse_site(site, predictor)
    cache, reason = _token_reason(predictor, tokens)
    rule = {"single": "single-token words (leading space)",
            "last": "any tokenization; last token", "mean": "any tokenization; token mean"}
    kept, report = filter_pairs(pairs, reason, rule[tokens], min_pairs, max_pairs,
                                key=lambda w: tuple(cache[w]),
                                same_key="identical tokens (the same vectors)")
    words = kept.words
    g_all = predictor.g()
    g_rows = _g_rows(g_all, {w: cache[w] for w in words}, tokens)
    if site == "unembed":  # subjects by their unembedding rows: the same space as objects
        f_rows, f_ref = g_rows, g_all
    else:
        prefix = predictor.encode("")
        contexts = [prefix + cache[w] for w in words]
        f_ref = predictor.f(contexts) if layer is None else predictor.hidden(contexts, layer)
        f_rows = dict(zip(words, f_ref, strict=True))
    g_sub, g_obj = _split(kept, g_rows)
    f_sub, f_obj = _split(kept, f_rows)
    space = RelationSpace(
        predictor.name, kept, g_sub, g_obj, f_sub, f_obj, g_all, f_ref, site == "unembed",
        "unembed", site,
        {"kind": "predictor", "tokens": tokens, "vocabulary": int(g_all.shape[0])},
        {w: tuple(cache[w]) for w in words},
    )
    return space, report


def _g_rows(g_all: np.ndarray, ids: Mapping[str, Context], tokens: str) -> dict[str, np.ndarray]:
    return {w: g_all[list(t)].mean(axis=0) if tokens == "mean" else g_all[t[-1]]
            for w, t in ids.items()}


def reparameterized_space(space: RelationSpace, reparam: Reparameterization) -> RelationSpace:
    """The space of the equivalent predictor f -> reparam(f), g -> reparam(g), computed from
    the stored vectors (f at the final site only) instead of new forward passes."""
    if space.f_name != "final" or not space.tokens:
        raise ConvergentError("only a model space at site 'final' can be reparameterized")
    g_all = reparam.apply_g(space.reference_g)
    g_rows = _g_rows(g_all, space.tokens, str(space.meta.get("tokens", "single")))
    g_sub, g_obj = _split(space.pairs, g_rows)
    f_sub = {r: reparam.apply_f(x) for r, x in space.f_sub.items()}
    f_obj = {r: reparam.apply_f(x) for r, x in space.f_obj.items()}
    return replace(space, g_sub=g_sub, g_obj=g_obj, f_sub=f_sub, f_obj=f_obj,
                   reference_g=g_all, reference_f=reparam.apply_f(space.reference_f))


def parse_site(site: str, predictor: Predictor) -> int | None:
    """The layer of ``layer.K`` (or ``layer:K``), None for 'final'/'unembed'; raises if the
    predictor has no such layer."""
    if site in ("final", "unembed"):
        return None
    name, _, num = site.replace(":", ".").partition(".")
    if name != "layer" or not num.isdigit():
        raise ConvergentError(f"--site {site}: expected 'final', 'unembed' or 'layer.K'")
    n_layers = getattr(predictor, "n_layers", None)
    if n_layers is None:
        raise ConvergentError(f"{predictor.name}: has no layers; use --site final")
    if int(num) >= n_layers:
        raise ConvergentError(f"--site {site}: {predictor.name} has layers 0..{n_layers - 1}")
    return int(num)

