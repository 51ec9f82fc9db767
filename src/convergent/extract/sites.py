"""Standard sites of a model and where they live: a declarative per-architecture table.

Every model exposes the same site names: ``embed`` (rows of the input embedding),
``layer.{i}`` (the residual stream after block ``i``, taken from a forward hook on the
block, *not* ``hidden_states[i + 1]`` read off the last layer, which is post-final-norm
in Llama, GPT-2 and Mamba), ``final_norm`` (the output of the final normalization) and
``unembed`` (rows of the output embedding).

:data:`ARCHITECTURES` maps a ``config.model_type`` to a :class:`SiteTable` of module paths.
Paths of ``embed``, ``blocks`` and ``final_norm`` are relative to ``model.base_model``
(the module that the engine runs, so no logits are ever computed); ``unembed`` is
relative to the full model. Models not in the table go through :func:`generic_table`,
which finds the blocks as the ``ModuleList`` with ``config.num_hidden_layers`` entries.

Example::

    table = site_table(model)                   # SiteTable for this architecture
    blocks = table.blocks_of(model)             # the ModuleList of blocks
    sites = parse_sites(["layer:all"], table.n_layers(model), table.available())
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from convergent.errors import ConvergentError

STATIC_SITES = ("embed", "unembed")


@dataclass(frozen=True)
class SiteTable:
    """Module paths of one architecture (``None``: the architecture has no such site)."""

    family: str
    embed: str
    blocks: str
    final_norm: str | None
    unembed: str | None
    causal: bool = True

    def available(self) -> tuple[str, ...]:
        """Site kinds this architecture has: embed, layer, final_norm, unembed."""
        kinds = ["embed", "layer"]
        if self.final_norm is not None:
            kinds.append("final_norm")
        if self.unembed is not None:
            kinds.append("unembed")
        return tuple(kinds)

    def embed_of(self, model: Any) -> Any:
        return get_module(model.base_model, self.embed)

    def blocks_of(self, model: Any) -> Any:
        return get_module(model.base_model, self.blocks)

    def final_norm_of(self, model: Any) -> Any:
        if self.final_norm is None:
            raise ConvergentError(f"{self.family} models have no final normalization")
        return get_module(model.base_model, self.final_norm)

    def unembed_of(self, model: Any) -> Any:
        if self.unembed is None:
            raise ConvergentError(f"{self.family} models have no output embedding (unembed)")
        return get_module(model, self.unembed)

    def n_layers(self, model: Any) -> int:
        return len(self.blocks_of(model))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_LLAMA = dict(embed="embed_tokens", blocks="layers", final_norm="norm", unembed="lm_head")
_MAMBA = dict(embed="embeddings", blocks="layers", final_norm="norm_f", unembed="lm_head")

#: model_type -> module paths. Add a line here to support a new architecture exactly.
ARCHITECTURES: dict[str, SiteTable] = {
    **{t: SiteTable(t, **_LLAMA) for t in (
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma",
        "gemma2", "phi3", "olmo", "olmo2", "granite", "smollm3",
        # the paper's families and other decoders with the same layout
        "gpt_oss", "deepseek_v3", "deepseek_v2", "kimi_linear", "qwen3_next", "olmoe",
        "olmo3", "gemma3_text", "minimax", "glm", "glm4", "glm4_moe", "ernie4_5",
        "seed_oss", "exaone4", "arcee", "stablelm", "starcoder2", "cohere", "helium",
        "phimoe", "hunyuan_v1_dense", "apertus", "nemotron",
    )},
    "gpt2": SiteTable("gpt2", "wte", "h", "ln_f", "lm_head"),
    "gpt_neox": SiteTable("gpt_neox", "embed_in", "layers", "final_layer_norm", "lm_head"),
    "mamba": SiteTable("mamba", **_MAMBA),
    "mamba2": SiteTable("mamba2", **_MAMBA),
    "falcon_mamba": SiteTable("falcon_mamba", **_MAMBA),
    "xlstm": SiteTable("xlstm", "embeddings", "blocks", "out_norm", "lm_head"),
    "rwkv": SiteTable("rwkv", "embeddings", "blocks", "ln_out", "head"),
    "bloom": SiteTable("bloom", "word_embeddings", "h", "ln_f", "lm_head"),
    "opt": SiteTable("opt", "decoder.embed_tokens", "decoder.layers",
                     "decoder.final_layer_norm", "lm_head"),
    "phi": SiteTable("phi", "embed_tokens", "layers", "final_layernorm", "lm_head"),
    "falcon_h1": SiteTable("falcon_h1", "embed_tokens", "layers", "final_layernorm",
                           "lm_head"),
    # Llama 4: both classes are their own base model; the multimodal one holds the
    # text-only Llama4ForCausalLM as ``language_model`` (its text model is ``model``)
    "llama4": SiteTable("llama4", "language_model.model.embed_tokens",
                        "language_model.model.layers", "language_model.model.norm",
                        "language_model.lm_head"),
    "llama4_text": SiteTable("llama4_text", "model.embed_tokens", "model.layers",
                             "model.norm", "lm_head"),
    # BERT is post-LN: the last block's output is already normalized, there is no final norm.
    # An encoder loaded as BertModel has no output embedding; BertForMaskedLM has one.
    "bert": SiteTable("bert", "embeddings.word_embeddings", "encoder.layer", None,
                      "cls.predictions.decoder", causal=False),
}


def get_module(root: Any, path: str) -> Any:
    """``root.a.b.0`` for the dotted ``path`` ``a.b.0``; a clear error if it is absent."""
    module = root
    for part in path.split("."):
        child = getattr(module, part, None)
        if child is None and part.isdigit():
            try:
                child = module[int(part)]
            except (IndexError, TypeError):
                child = None
        if child is None:
            raise ConvergentError(
                f"{type(root).__name__} has no module {path!r} (site table out of date?)"
            )
        module = child
    return module


def _has(root: Any, path: str | None) -> bool:
    if path is None:
        return False
    try:
        get_module(root, path)
    except ConvergentError:
        return False
    return True


def site_table(model: Any) -> SiteTable:
    """The :class:`SiteTable` of ``model``: the declared one, else :func:`generic_table`."""
    model_type = getattr(model.config, "model_type", "")
    table = ARCHITECTURES.get(model_type)
    if table is None:
        return generic_table(model)
    if table.unembed is not None and not _has(model, table.unembed):
        # renamed across transformers versions (GPT-NeoX: embed_out -> lm_head), or absent
        # (an encoder loaded without its head): ask the model itself
        table = SiteTable(table.family, table.embed, table.blocks, table.final_norm,
                          _output_embedding_path(model), table.causal)
    return table


def _output_embedding_path(model: Any) -> str | None:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        return None
    return next((name for name, m in model.named_modules() if m is head), None)


def generic_table(model: Any) -> SiteTable:
    """Guess the sites of an unlisted architecture from standard Hugging Face accessors."""
    import torch

    base = model.base_model
    n = getattr(model.config, "num_hidden_layers", None)
    names = {id(m): name for name, m in base.named_modules()}
    lists = [(name, m) for name, m in base.named_modules() if isinstance(m, torch.nn.ModuleList)]
    blocks = [name for name, m in lists if n is None or len(m) == n]
    if not blocks:
        raise ConvergentError(
            f"{type(model).__name__}: cannot find its blocks (no ModuleList of "
            f"{n} layers); add its model_type to convergent.extract.sites.ARCHITECTURES"
        )
    embed = names.get(id(base.get_input_embeddings()))
    if embed is None:
        raise ConvergentError(f"{type(model).__name__}: cannot find its input embedding")
    children = [name for name, _ in base.named_children()]
    norm = next((c for c in reversed(children) if re.search(r"norm|ln_f", c)), None)
    unembed = _output_embedding_path(model)
    causal = type(model).__name__.endswith("ForCausalLM")
    return SiteTable(f"generic:{model.config.model_type}", embed, blocks[0], norm, unembed,
                     causal)


_LAYER = re.compile(r"^layer[.:](\d+|all)$")


def parse_sites(
    raw: Sequence[str], n_layers: int, available: Sequence[str] = ("embed", "layer",
                                                                  "final_norm", "unembed")
) -> list[str]:
    """Canonical site names for CLI strings: ``layer:7``/``layer.7`` -> ``layer.7``,
    ``layer:all`` -> every block; duplicates dropped, order kept; bad names are errors."""
    if not raw:
        raise ConvergentError("no site requested (use --site embed, unembed, final_norm, "
                              "layer:7 or layer:all)")
    out: list[str] = []
    for text in raw:
        for item in (p.strip() for p in str(text).split(",")):
            if not item:
                continue
            match = _LAYER.match(item)
            if match:
                if "layer" not in available:
                    raise ConvergentError(f"site {item!r}: this model has no layers")
                idx = match.group(1)
                if idx == "all":
                    names = [f"layer.{i}" for i in range(n_layers)]
                else:
                    i = int(idx)
                    if i >= n_layers:
                        raise ConvergentError(
                            f"site {item!r}: the model has {n_layers} layers (0..{n_layers - 1})"
                        )
                    names = [f"layer.{i}"]
            elif item in ("embed", "unembed", "final_norm"):
                if item not in available:
                    raise ConvergentError(f"site {item!r}: this model has no {item} site "
                                          f"(it has {', '.join(available)})")
                names = [item]
            else:
                raise ConvergentError(f"site {item!r}: expected embed, unembed, final_norm, "
                                      "layer:N or layer:all")
            out.extend(n for n in names if n not in out)
    return out


def layer_index(site: str) -> int | None:
    """7 for ``layer.7``; None for other sites."""
    return int(site.split(".", 1)[1]) if site.startswith("layer.") else None
