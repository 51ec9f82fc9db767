"""Turn a source spec string into a Source.

Specs: a bundled name (``glove-6b-50d``, ``smollm2-135m``, ``minilm-l6``); ``matrix:PATH``;
``run:DIR[@step]`` (a training run); ``cache:DIR`` (an extraction cache); ``hf:ID_OR_DIR``;
a word-vector file (GloVe/word2vec text or binary, fastText ``.vec``, gensim ``.kv``); a
local Hugging Face folder or ``.gguf`` file; or a hub id ``org/name``. The data's own
signal: ``tokens:X`` (number-token counts) and ``cooc:X`` (their PPMI co-occurrence rows),
where X is a run folder, a prepared-data folder or a corpus spec.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.sources.base import Source

# prefix -> (module, function(rest: str, **options) -> Source)
PREFIXES: dict[str, tuple[str, str]] = {
    "matrix": ("convergent.sources.matrix", "open_matrix"),
    "run": ("convergent.sources.trained", "open_run"),
    "cache": ("convergent.sources.cache", "open_cache"),
    "hf": ("convergent.sources.hf", "open_hf"),
    "vectors": ("convergent.sources.static", "open_vectors_file"),
    "tokens": ("convergent.sources.tokens", "open_tokens"),
    "cooc": ("convergent.sources.tokens", "open_cooc"),
}

# bundled name -> (module, function(**options) -> Source)
CATALOG: dict[str, tuple[str, str]] = {
    "glove-6b-50d": ("convergent.sources.static", "open_glove_6b_50d"),
    "smollm2-135m": ("convergent.sources.hf", "open_smollm2"),
    "minilm-l6": ("convergent.sources.hf", "open_minilm"),
}

WORD_VECTOR_SUFFIXES = (".txt", ".vec", ".bin", ".kv", ".model", ".gz", ".w2v")
MATRIX_SUFFIXES = (".npy", ".safetensors", ".csv")


def _call(module: str, function: str, *args: Any, **options: Any) -> Source:
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("convergent"):
            raise ConvergentError(f"{module} is not part of this version of convergent") from None
        raise ConvergentError(
            f"{module} needs the package {err.name!r}: install convergent with its extras "
            "(make install)"
        ) from None
    return getattr(loaded, function)(*args, **options)


def open_source(spec: str, **options: Any) -> Source:
    """Resolve ``spec`` (see module docstring); ``options`` go to the source, None = unset."""
    options = {k: v for k, v in options.items() if v is not None}
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in PREFIXES and not Path(spec).exists():
        return _call(*PREFIXES[prefix], rest, **options)
    if spec in CATALOG:
        return _call(*CATALOG[spec], **options)
    path = Path(spec)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in MATRIX_SUFFIXES:
            return _call(*PREFIXES["matrix"], spec, **options)
        if suffix == ".gguf":
            return _call(*PREFIXES["hf"], spec, **options)
        if suffix in WORD_VECTOR_SUFFIXES:
            return _call(*PREFIXES["vectors"], spec, **options)
        raise ConvergentError(
            f"{spec}: unknown file type {suffix!r}; use matrix:PATH for matrices or "
            f"vectors:PATH for word-vector files"
        )
    if path.is_dir():
        if (path / "manifest.json").is_file():
            kind = "cache" if (path / "cache.json").is_file() else "run"
            return _call(*PREFIXES[kind], spec, **options)
        if (path / "config.json").is_file():
            return _call(*PREFIXES["hf"], spec, **options)
        raise ConvergentError(f"{spec}: a folder that is neither a model, a run nor a cache")
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return _call(*PREFIXES["hf"], spec, **options)
    known = ", ".join(sorted(CATALOG))
    raise ConvergentError(
        f"{spec}: no such file, folder or bundled source (bundled: {known}; prefixes: "
        f"{', '.join(p + ':' for p in PREFIXES)})"
    )
