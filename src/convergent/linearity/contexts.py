"""Subjects read inside templates at a layer (LRE's setting), through the extraction engine.

Hernandez et al. (2024) read a relation's subject inside the relation's own prompt templates
("The capital city of {} is"), at the subject's last token, in a middle layer. Here the
states come from :class:`convergent.extract.engine.Engine` (the engine of ``numbers``), one
template set per relation, averaged over the templates; the objects' output rows are the
unembedding rows of their first token (what the model must predict next, as LRE scores it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.linearity.pairs import FilterReport, PairSet, filter_pairs
from convergent.linearity.space import RelationSpace


def context_states(
    model: Any, tokenizer: Any, items: Sequence[str], templates: Sequence[str], layer: int,
    batch_size: int = 32,
) -> np.ndarray:
    """[n, d] residual stream after block ``layer`` at each item's last token, placed in every
    template (``{}`` slot) and averaged over templates."""
    from convergent.extract.engine import Engine, EngineConfig
    from convergent.extract.sites import site_table
    from convergent.extract.templates import check_templates, require_fast

    require_fast(tokenizer, type(model).__name__)
    table = site_table(model)
    n_layers = table.n_layers(model)
    if not 0 <= layer < n_layers:
        raise ConvergentError(f"layer {layer}: the model has layers 0..{n_layers - 1}")
    site = f"layer.{layer}"
    config = EngineConfig(sites=(site,), templates=check_templates(templates, "subjects"),
                          kind="subjects", pooling="last", batch_size=batch_size)
    rows = Engine(model, tokenizer, table, config).contextual_rows(list(items))[site]
    return rows.double().numpy()


def relation_templates(
    pairs: PairSet, templates: Sequence[str] | None = None,
) -> dict[str, tuple[str, ...]]:
    """Templates per relation: ``templates`` for all relations when given, else each
    relation's own ``prompt_templates`` (``pairs.templates``, as read from LRE files)."""
    from convergent.extract.templates import check_templates

    if templates is not None:
        chosen = check_templates(templates, "subjects")
        return {rel: chosen for rel in pairs.relations}
    own: Mapping[str, Sequence[str]] = getattr(pairs, "templates", None) or {}
    out = {}
    for rel in pairs.relations:
        if not own.get(rel):
            raise ConvergentError(
                f"pairs {pairs.name}: relation {rel!r} has no prompt templates; give --template"
            )
        out[rel] = check_templates(own[rel], "subjects")
    return out


def context_space(
    predictor: Any, pairs: PairSet, layer: int, templates: Sequence[str] | None = None,
    min_pairs: int = 3, max_pairs: int | None = None, batch_size: int = 32,
) -> tuple[RelationSpace, FilterReport]:
    """LRE's setting as a :class:`RelationSpace`: f = subject (and object) states inside the
    relation's templates after block ``layer``; g = unembedding rows of the first token."""
    model, tokenizer = getattr(predictor, "model", None), getattr(predictor, "tokenizer", None)
    if model is None or tokenizer is None:
        raise ConvergentError(f"{predictor.name}: contexts need a model with a tokenizer")
    chosen = relation_templates(pairs, templates)
    cache: dict[str, tuple[int, ...]] = {}

    def reason(word: str) -> str | None:
        return None if cache.setdefault(word, predictor.word_tokens(word)) else \
            "unknown to the tokenizer"

    kept, report = filter_pairs(pairs, reason, "known tokens; object by its first token",
                                min_pairs, max_pairs)
    g_all = predictor.g()
    f_sub, f_obj, g_sub, g_obj, refs = {}, {}, {}, {}, []
    for rel, ps in kept.relations.items():
        words = list(dict.fromkeys(w for p in ps for w in p))
        states = context_states(model, tokenizer, words, chosen[rel], layer, batch_size)
        row = dict(zip(words, states, strict=True))
        refs.append(states)
        f_sub[rel] = np.stack([row[s] for s, _ in ps])
        f_obj[rel] = np.stack([row[o] for _, o in ps])
        g_sub[rel] = g_all[[cache[s][0] for s, _ in ps]]
        g_obj[rel] = g_all[[cache[o][0] for _, o in ps]]
    meta = {"kind": "predictor", "tokens": "first", "vocabulary": int(g_all.shape[0]),
            "templates": {r: list(chosen[r]) for r in kept.relations}}
    space = RelationSpace(predictor.name, kept, g_sub, g_obj, f_sub, f_obj, g_all,
                          np.concatenate(refs), False, "unembed", f"layer.{layer}:templates",
                          meta)
    return space, report
