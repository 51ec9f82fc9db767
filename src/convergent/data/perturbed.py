"""Perturbed copies of prepared data, made once per (kind, seed) and cached beside it.

``swap``, ``swap-global`` and ``unigram`` write their own shards (same document offsets)
under ``DIR/perturbed/<kind>-seed<k>/``; ``isolate-K`` and ``context-L`` write the packed
segments ``(starts, lengths)`` under ``DIR/perturbed/<kind>-<K>/``. Each is made shard by
shard with vectorised numpy and written atomically; its manifest names the base data's
manifest hash, so a re-prepared base is never mixed with stale perturbations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convergent.data.manifest import read_manifest
from convergent.data.packing import packed_bounds
from convergent.data.prepare import PreparedData
from convergent.data.shards import join_shards, open_shard, remove_partial, write_shard
from convergent.io import write_bytes_atomic, write_json_atomic
from convergent.train.perturb import (
    Perturbation,
    document_segments,
    isolate_segments,
    swap_numbers,
    unigram_replace,
)


def number_mask(tok) -> np.ndarray:
    """Boolean lookup table over token ids: True for the number tokens."""
    from convergent.train.tokenize import digit_token_ids

    table = np.zeros(tok.get_vocab_size(), dtype=bool)
    table[digit_token_ids(tok)] = True
    return table


def _valid(folder: Path, base: str) -> dict | None:
    done = folder / "done.json"
    if not done.is_file():
        return None
    import json

    record = json.loads(done.read_text())
    return record if record.get("base") == base else None


def perturbed_stream(data: PreparedData, kind: str, seed: int, tok=None):
    """The stream of ``data`` with numbers swapped or resampled (``kind``), cached."""
    base = data.sha256
    folder = data.folder / "perturbed" / f"{kind}-seed{seed}"
    record = _valid(folder, base)
    if record is None:
        record = _write_perturbed(data, kind, seed, folder, base, tok or data.tokenizer())
    return join_shards([open_shard(folder, s, data.dtype) for s in record["shards"]])


def _write_perturbed(data: PreparedData, kind: str, seed: int, folder: Path, base: str,
                     tok) -> dict:
    remove_partial(folder)
    table = number_mask(tok)
    shards, offsets = data.shards(), data.offsets()
    counts = None
    if kind == "unigram":  # the corpus's marginal over number tokens, shard by shard
        counts = np.zeros(len(table), dtype=np.int64)
        for shard in shards:
            ids = np.asarray(shard)
            counts += np.bincount(ids[table[ids]], minlength=len(table))
    written = []
    for index, (shard, offset) in enumerate(zip(shards, offsets, strict=True)):
        ids = np.asarray(shard)
        is_number = table[ids]
        if kind == "unigram":
            out = unigram_replace(ids, is_number, [seed, index], counts)
        else:
            starts = None if kind == "swap-global" else np.asarray(offset[:-1])
            out = swap_numbers(ids, is_number, [seed, index], starts)
        written.append(write_shard(folder, index, out, np.asarray(offset), data.dtype).to_dict())
    record = {"kind": kind, "seed": seed, "base": base, "shards": written}
    write_json_atomic(folder / "done.json", record)
    return record


def packed_segments(data: PreparedData, pert: Perturbation, tok=None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, lengths, packed bounds) over the whole stream for ``isolate-K`` or
    ``context-L``, cached and memmapped (see :mod:`convergent.data.packing`)."""
    base = data.sha256
    folder = data.folder / "perturbed" / f"{pert.kind}-{pert.k}"
    if pert.kind == "context":  # documents only: L is the row width, not a cut
        folder = data.folder / "perturbed" / "documents"
    if _valid(folder, base) is None:
        remove_partial(folder)
        table = number_mask(tok or data.tokenizer()) if pert.kind == "isolate" else None
        parts, first = [], 0
        for shard, offset in zip(data.shards(), data.offsets(), strict=True):
            doc_ends = np.asarray(offset[1:]) - 1
            if table is None:
                starts, lengths = document_segments(len(shard), doc_ends)
            else:
                starts, lengths = isolate_segments(table[np.asarray(shard)], pert.k, doc_ends)
            parts.append((starts + first, lengths))
            first += len(shard)
        starts = np.concatenate([p[0] for p in parts]).astype(np.int64)
        lengths = np.concatenate([p[1] for p in parts]).astype(np.int64)
        for name, array in (("starts", starts), ("lengths", lengths),
                            ("bounds", packed_bounds(lengths))):
            write_bytes_atomic(folder / f"{name}.npy", lambda h, a=array: np.save(h, a))
        write_json_atomic(folder / "done.json", {"kind": pert.kind, "k": pert.k, "base": base})
    return tuple(np.load(folder / f"{name}.npy", mmap_mode="r")  # type: ignore[return-value]
                 for name in ("starts", "lengths", "bounds"))


def base_folder(stream) -> Path | None:
    """The prepared folder a (memmapped or sharded) stream was opened from, if any."""
    first = stream.shards[0] if hasattr(stream, "shards") else stream
    name = getattr(first, "filename", None)
    if not name:
        return None
    folder = Path(name).parent.parent
    return folder if read_manifest(folder) is not None else None

