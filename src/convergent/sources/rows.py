"""Rows of one embedding tensor, read without building the model.

For the static sites (``embed``, ``unembed``) only the rows of the items' tokens are
needed. :func:`open_rows` reads them straight from the checkpoint: a local safetensors
folder (sharded with ``model.safetensors.index.json``, or one file) through
``safe_open(...).get_slice``, a GGUF file through the ``gguf`` reader (quantized rows are
dequantized one by one, only those asked for), or a hub id, for which only ``config.json``,
the tokenizer files, the index and the one shard holding the tensor are downloaded. Memory
is the rows asked for, not the model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from convergent.errors import ConvergentError
from convergent.sources.hf_load import ModelRef, _check_online, cache_root, file_sha256

#: Checkpoint tensor names of the input embedding, most specific first (family in comment).
EMBED_NAMES = (
    "model.embed_tokens.weight",  # llama, mistral, qwen, gemma, gpt_oss, deepseek_v3, kimi
    "language_model.model.embed_tokens.weight",  # llama4 (text model inside)
    "model.language_model.embed_tokens.weight",  # llama4, gemma3 (transformers >= 5 layout)
    "transformer.wte.weight", "wte.weight",  # gpt2
    "gpt_neox.embed_in.weight",  # gpt_neox, pythia
    "backbone.embeddings.weight", "backbone.embedding.weight",  # mamba, falcon_mamba, xlstm
    "bert.embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight",  # bert
    "transformer.word_embeddings.weight",  # bloom, falcon
    "model.decoder.embed_tokens.weight",  # opt
    "rwkv.embeddings.weight",  # rwkv
    "tok_embeddings.weight",  # Meta's original llama layout
    "token_embd.weight",  # GGUF
)
#: Checkpoint tensor names of the output embedding (LM head).
UNEMBED_NAMES = (
    "lm_head.weight", "language_model.lm_head.weight", "embed_out.weight",
    "cls.predictions.decoder.weight", "head.weight", "output.weight",
)
#: Last-but-one name parts that mark an embedding in checkpoints not listed above.
EMBED_PARTS = ("embed_tokens", "wte", "word_embeddings", "embed_in", "embeddings", "embedding",
               "tok_embeddings", "token_embd")
_HEADS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration", "ForMaskedLM")
#: Files a tokenizer may need (absent ones are skipped).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt",
                   "added_tokens.json")


class TensorStore(Protocol):
    """Named 2-D tensors whose rows can be read one at a time."""

    where: str

    def names(self) -> list[str]: ...
    def shape(self, name: str) -> tuple[int, int]: ...
    def rows(self, name: str, ids: Sequence[int]) -> np.ndarray: ...
    def digest(self, name: str) -> str: ...


class SafetensorsStore:
    """A folder of ``*.safetensors`` (with ``model.safetensors.index.json`` when sharded)."""

    def __init__(self, folder: Path, weight_map: dict[str, str] | None = None,
                 fetch: Any = None) -> None:
        self.folder, self.where, self._fetch = folder, str(folder), fetch
        if weight_map is None:
            index = folder / "model.safetensors.index.json"
            if index.is_file():
                weight_map = dict(json.loads(index.read_text())["weight_map"])
            else:
                weight_map = {}
                for file in sorted(folder.glob("*.safetensors")):
                    weight_map.update(dict.fromkeys(_header(file), file.name))
        self.weight_map = weight_map

    def names(self) -> list[str]:
        return list(self.weight_map)

    def _file(self, name: str) -> Path:
        if self._fetch is not None:  # a hub checkpoint: download this one shard (cached)
            return Path(self._fetch(self.weight_map[name]))
        return self.folder / self.weight_map[name]

    def shape(self, name: str) -> tuple[int, int]:
        shape = _header(self._file(name))[name]["shape"]
        if len(shape) != 2:
            raise ConvergentError(f"{self.where}: tensor {name} has shape {shape}, not 2-D")
        return int(shape[0]), int(shape[1])

    def rows(self, name: str, ids: Sequence[int]) -> np.ndarray:
        from safetensors import safe_open

        out = np.empty((len(ids), self.shape(name)[1]), dtype=np.float32)
        with safe_open(str(self._file(name)), framework="pt") as handle:
            part = handle.get_slice(name)
            for k, start, stop in _runs([int(i) for i in ids]):
                out[k:k + stop - start] = part[start:stop].float().numpy()
        return out

    def digest(self, name: str) -> str:
        """sha256 of the tensor's bytes, streamed from the file (never held whole)."""
        file = self._file(name)
        info = _header(file)[name]
        start, stop = (int(x) for x in info["data_offsets"])
        stat = file.stat()
        return _range_sha256(str(file), stat.st_size, stat.st_mtime_ns,
                             _data_start(file) + start, stop - start)


class GGUFStore:
    """A GGUF file: memory-mapped, rows dequantized only when asked for."""

    def __init__(self, path: Path) -> None:
        from gguf import GGUFReader

        self.where = str(path)
        try:
            self.reader = GGUFReader(path)
        except Exception as err:
            raise ConvergentError(f"{path}: cannot read the GGUF file ({err})") from None
        self.tensors = {t.name: t for t in self.reader.tensors}

    def names(self) -> list[str]:
        return list(self.tensors)

    def shape(self, name: str) -> tuple[int, int]:
        ne = [int(x) for x in self.tensors[name].shape]  # GGUF order: [width, rows]
        return ne[1], ne[0]

    def rows(self, name: str, ids: Sequence[int]) -> np.ndarray:
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize

        tensor = self.tensors[name]
        raw = np.asarray(tensor.data[np.asarray(ids, dtype=np.int64)])
        if tensor.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            return raw.astype(np.float32)
        return dequantize(raw, tensor.tensor_type).astype(np.float32).reshape(len(ids), -1)

    def digest(self, name: str) -> str:
        return file_sha256(self.where)


@dataclass
class EmbeddingRows:
    """The embedding tensors of one checkpoint, its config and tokenizer, no model."""

    name: str
    store: TensorStore
    config: dict[str, Any]
    tokenizer: Any
    identity: dict[str, Any] = field(default_factory=dict)
    gguf: bool = False  # GGUF files hold language models; no config.json says so

    def tied(self) -> bool:
        """The config's ``tie_word_embeddings`` (default True, as in transformers); a GGUF
        file is tied when it stores no output tensor."""
        if self.gguf:
            return not set(UNEMBED_NAMES) & set(self.store.names())
        text = self.config.get("text_config") or {}
        return bool(self.config.get("tie_word_embeddings",
                                    text.get("tie_word_embeddings", True)))

    def tensor(self, site: str) -> str:
        """The checkpoint name of the ``embed`` or ``unembed`` tensor (tied: the embedding)."""
        names = set(self.store.names())
        if site == "unembed":
            found = next((n for n in UNEMBED_NAMES if n in names), None)
            if found is not None and not self.tied():
                return found
            archs = self.config.get("architectures") or []
            head = self.gguf or any(str(a).endswith(_HEADS) for a in archs)
            if found is None and not (self.tied() and head):
                raise ConvergentError(f"{self.name}: the checkpoint has no output embedding "
                                      f"(looked for {', '.join(UNEMBED_NAMES)}), so no unembed "
                                      "site")
        found = next((n for n in EMBED_NAMES if n in names), None)
        if found is None:
            guesses = [n for n in sorted(names) if n.endswith(".weight") and
                       n.split(".")[-2] in EMBED_PARTS and not
                       any(p in n for p in ("vision", "audio", "position", "patch"))]
            if len(guesses) == 1:
                return guesses[0]
            some = ", ".join(sorted(names)[:4]) or "none"
            raise ConvergentError(f"{self.name}: the checkpoint has no embedding tensor under "
                                  f"any known name (it has {len(names)} tensors, e.g. {some})")
        return found

    def width(self, site: str) -> int:
        return self.store.shape(self.tensor(site))[1]

    def rows(self, site: str, ids: Sequence[int]) -> np.ndarray:
        """float32 rows ``ids`` of the ``site`` tensor (each distinct row read once)."""
        name = self.tensor(site)
        n_rows = self.store.shape(name)[0]
        unique = sorted({int(i) for i in ids})
        bad = [i for i in unique if not 0 <= i < n_rows]
        if bad:
            raise ConvergentError(f"{self.name}: token id {bad[0]} is outside the {n_rows} rows "
                                  f"of {name}")
        values = self.store.rows(name, unique)
        where = {i: k for k, i in enumerate(unique)}
        return values[[where[int(i)] for i in ids]]

    def meta(self) -> dict[str, Any]:
        text = self.config.get("text_config") or self.config
        archs = self.config.get("architectures") or [None]
        return {
            "model_type": self.config.get("model_type"),
            "architecture": archs[0],
            "n_layers": text.get("num_hidden_layers", text.get("n_layer")),
            "hidden_size": text.get("hidden_size", text.get("n_embd")),
            "tied_embeddings": self.tied(),
            "read": "rows of the checkpoint tensor, no model built",
        }


def open_rows(ref: ModelRef, root: Path | None = None,
              trust_remote_code: bool = False) -> EmbeddingRows:
    """:class:`EmbeddingRows` for a folder, GGUF file or hub id (see module docstring);
    ``trust_remote_code`` lets a tokenizer with its own code load (no model code runs)."""
    if ref.kind == "hub":
        return _hub_rows(ref, trust_remote_code)
    if ref.kind == "gguf":
        return _gguf_rows(ref, root)
    folder = Path(ref.location)
    store = SafetensorsStore(folder)
    if not store.names():
        raise ConvergentError(f"{folder}: no safetensors weights (pickled .bin weights are "
                              "not read)")
    return _finish(Path(ref.location).name, store, folder, folder,
                   {"model": str(folder.resolve()), "revision": None},
                   trust_remote_code=trust_remote_code)


def _finish(name: str, store: TensorStore, config_dir: Path, tok_dir: Path,
            identity: dict[str, Any], digests: bool = True, **tok_options: Any
            ) -> EmbeddingRows:
    from transformers import AutoTokenizer

    config_file = config_dir / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), **tok_options)
    except Exception as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "trust_remote_code" in str(err):
            raise ConvergentError(f"{name}: its tokenizer runs its own Python code; pass "
                                  "--trust-remote-code to allow it") from None
        raise ConvergentError(f"{name}: cannot load the tokenizer ({text})") from None
    rows = EmbeddingRows(name, store, config, tokenizer, identity,
                         gguf=isinstance(store, GGUFStore))
    tensors = {"embed": rows.tensor("embed")}
    with_head = [n for n in UNEMBED_NAMES if n in set(store.names())]
    if with_head and not rows.tied():
        tensors["unembed"] = with_head[0]
    rows.identity = {**identity, "tensors": tensors}
    if digests:  # a hub checkpoint is pinned by its commit instead
        rows.identity["tensor_sha256"] = {s: store.digest(t) for s, t in tensors.items()}
    return rows


def _gguf_rows(ref: ModelRef, root: Path | None) -> EmbeddingRows:
    from convergent.sources.hf_load import gguf_copy

    path = Path(ref.location) / str(ref.gguf_file)
    sha = file_sha256(path)
    copy = (root or cache_root()) / "models" / f"{path.stem}-{sha[:16]}"
    identity = {"model": str(path), "gguf_sha256": sha, "revision": None}
    if (copy / "convergent.json").is_file():  # the dequantized copy is already there
        folder = gguf_copy(ref, root)
        return _finish(path.stem, SafetensorsStore(folder), folder, folder, identity)
    return _finish(path.stem, GGUFStore(path), Path(ref.location), Path(ref.location),
                   identity, gguf_file=ref.gguf_file)


def _hub_rows(ref: ModelRef, trust_remote_code: bool) -> EmbeddingRows:
    """Download config, tokenizer and index, then only the shard(s) of the needed tensors."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    _check_online(ref)

    def get(filename: str, optional: bool = False) -> str | None:
        try:
            return str(huggingface_hub.hf_hub_download(ref.location, filename,
                                                       revision=ref.revision))
        except EntryNotFoundError as err:
            if optional:
                return None
            if isinstance(err, LocalEntryNotFoundError):
                raise ConvergentError(f"{ref.location}: {filename} is not in the local Hugging "
                                      "Face cache and cannot be downloaded (offline?)") from None
            raise ConvergentError(f"{ref.location}: has no file {filename}") from None
        except Exception as err:
            text = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConvergentError(f"{ref.location}: cannot download {filename} ({text})") \
                from None

    config = Path(str(get("config.json")))
    for filename in TOKENIZER_FILES:
        get(filename, optional=True)
    index = get("model.safetensors.index.json", optional=True)
    if index is not None:
        weight_map = dict(json.loads(Path(index).read_text())["weight_map"])
        store = SafetensorsStore(config.parent, weight_map, fetch=get)
    else:  # one unsharded file: small by construction, fetched whole
        get("model.safetensors")
        store = SafetensorsStore(config.parent)
    parts = config.parent.parts
    commit = parts[-1] if len(parts) > 1 and parts[-2] == "snapshots" else ref.revision
    return _finish(ref.location, store, config.parent, config.parent,
                   {"model": ref.location, "revision": commit}, digests=False,
                   trust_remote_code=trust_remote_code)


def _runs(ids: list[int]) -> list[tuple[int, int, int]]:
    """(position in ``ids``, start, stop) of every run of consecutive ids."""
    out: list[tuple[int, int, int]] = []
    for k, i in enumerate(ids):
        if out and out[-1][2] == i and k == out[-1][0] + out[-1][2] - out[-1][1]:
            out[-1] = (out[-1][0], out[-1][1], i + 1)
        else:
            out.append((k, i, i + 1))
    return out


class RowTable:
    """The manifest's site table of a rows-only extraction: which tensors were read."""

    def __init__(self, rows: EmbeddingRows, sites: Sequence[str]) -> None:
        self.family = str(rows.config.get("model_type") or "gguf")
        self.tensors = {s: rows.tensor(s) for s in sites}

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "read": "rows", "tensors": dict(self.tensors)}


class RowEngine:
    """What :func:`convergent.extract.runner.run_extraction` needs of an engine, for the
    static sites only, served from :class:`EmbeddingRows`; pooling as in
    :meth:`convergent.extract.engine.Engine.static_rows`."""

    def __init__(self, rows: EmbeddingRows, config: Any) -> None:
        self.rows, self.config = rows, config
        self.table = RowTable(rows, config.sites)
        self.on_batch: Any = None

    def widths(self) -> dict[str, int]:
        return {site: self.rows.width(site) for site in self.config.sites}

    def run(self, items: Sequence[str], token_ids: Sequence[Sequence[int]]) -> dict[str, Any]:
        import torch

        from convergent.extract.engine import _cast, _stack

        out = {}
        flat = [i for ids in token_ids for i in ids]
        for site in self.config.sites:
            values = torch.from_numpy(self.rows.rows(site, flat))
            pooled, k = [], 0
            for ids in token_ids:
                picked = values[k:k + len(ids)]
                k += len(ids)
                pooled.append(picked[-1] if self.config.pooling == "last" else picked.mean(0))
            out[site] = _cast(_stack(pooled, values.shape[1]), self.config.dtype)
        return out


def _header(file: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor name -> dtype, shape, offsets)."""
    try:
        with open(file, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
    except (OSError, ValueError) as err:
        raise ConvergentError(f"{file}: not a readable safetensors file ({err})") from None
    header.pop("__metadata__", None)
    return dict(header)


def _data_start(file: Path) -> int:
    with open(file, "rb") as handle:
        return 8 + int.from_bytes(handle.read(8), "little")


_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def _range_sha256(path: str, size: int, mtime_ns: int, start: int, length: int) -> str:
    key = (path, size, mtime_ns, start, length)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            handle.seek(start)
            left = length
            while left > 0:
                block = handle.read(min(left, 1 << 22))
                if not block:
                    break
                digest.update(block)
                left -= len(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]
