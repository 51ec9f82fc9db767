"""Run an extraction into a cache folder: plan, estimate, shard by shard, resumable.

A run writes ``cache.json``, ``manifest.json`` and ``shards/NNNNN.safetensors``. The
manifest is rewritten (atomically) after every shard, so a killed run resumes at the first
missing shard and produces the same cache; a folder holding a different extraction is
refused rather than mixed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.extract.engine import Engine
from convergent.extract.manifest import (
    VERSION,
    disk_bytes,
    human_bytes,
    is_cache,
    plan_hash,
    read_manifest,
    write_manifest,
)
from convergent.extract.shards import write_shard
from convergent.extract.templates import encode, own_tokens, render
from convergent.io import write_json_atomic
from convergent.locking import LOCK, WORKERS

SHARD_SIZE = 256
#: Bumped whenever the engine's output for the same plan changes, so old caches are not reused.
ENGINE_VERSION = 4
TOKENS_FILE = "tokens.json"


@dataclass(frozen=True)
class ItemPlan:
    """The items a model can represent, with their token ids, and those it cannot."""

    labels: tuple[Any, ...]
    items: tuple[str, ...]
    token_ids: tuple[tuple[int, ...], ...]
    context_token_ids: tuple[tuple[int, ...], ...]
    dropped: tuple[Any, ...]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.__dict__.items()}


def plan_items(tokenizer: Any, labels: Sequence[Any], kind: str, templates: Sequence[str],
               name: str) -> ItemPlan:
    """Tokenize every item alone and in the first template; items that need the unknown
    token are dropped (and reported); none left is an error."""
    unk = getattr(tokenizer, "unk_token_id", None)
    kept, items, own, ctx, dropped = [], [], [], [], []
    for label in labels:
        item = str(label)
        ids = own_tokens(tokenizer, item)
        text, span = render(templates[0], item, kind)
        placed = encode(tokenizer, text, span).item_ids if ids else ()
        if not ids or (unk is not None and (unk in ids or unk in placed)):
            dropped.append(label)
            continue
        kept.append(label)
        items.append(item)
        own.append(ids)
        ctx.append(placed)
    if not kept:
        what = "numbers" if kind == "numbers" else "words"
        raise ConvergentError(
            f"{name}: its vocabulary has none of the {len(labels)} requested {what} "
            f"(every one needs the unknown token {getattr(tokenizer, 'unk_token', None)!r})"
        )
    return ItemPlan(tuple(kept), tuple(items), tuple(own), tuple(ctx), tuple(dropped))


def run_extraction(
    engine: Engine,
    plan: ItemPlan,
    out: str | Path,
    identity: dict[str, Any],
    shard_size: int = SHARD_SIZE,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Extract ``plan``'s items with ``engine`` into the cache folder ``out``; returns the
    final manifest. ``identity`` names the model (source, revision, weight hash) and is
    part of the plan a resumed run must match; ``meta`` is extra provenance."""
    from tqdm.auto import tqdm

    folder = Path(out)
    config = engine.config
    spec = {
        **identity,
        "engine": ENGINE_VERSION,
        "kind": config.kind,
        "sites": list(config.sites),
        "templates": list(config.templates),
        "pooling": config.pooling,
        "dtype": config.dtype,
        "labels": list(plan.labels),
        "shard_size": shard_size,
    }
    digest = plan_hash(spec)
    manifest = _existing(folder, digest)
    if manifest is not None and manifest["complete"]:
        return manifest
    widths = engine.widths()
    n = len(plan.items)
    if log is not None:
        size = human_bytes(disk_bytes(n, widths, config.dtype))
        log(f"extracting {len(config.sites)} site(s) x {n} {config.kind} x "
            f"{len(config.templates)} template(s) from {identity.get('source')}: about "
            f"{size} on disk in {folder}" + (" (resuming)" if manifest else ""))
    if manifest is None:
        manifest = {
            "version": VERSION,
            "plan_hash": digest,
            "plan": spec,
            "source": identity.get("source"),
            "widths": widths,
            "tokens_file": TOKENS_FILE,
            "dropped": list(plan.dropped),
            "site_table": engine.table.to_dict(),
            "meta": meta or {},
            "shards": [],
            "complete": False,
        }
        # token ids go to their own file, written once: the manifest, rewritten after
        # every shard, stays small however many items there are
        write_json_atomic(folder / TOKENS_FILE, {
            "token_ids": [list(t) for t in plan.token_ids],
            "context_token_ids": [list(t) for t in plan.context_token_ids],
        })
        write_manifest(folder, manifest)
    done = {s["start"] for s in manifest["shards"] if (folder / s["file"]).is_file()}
    manifest["shards"] = [s for s in manifest["shards"] if s["start"] in done]
    per_item = len(config.templates) if config.contextual else 1
    bar = tqdm(total=n * per_item, unit="context", disable=not progress, desc="extract")
    engine.on_batch = bar.update if config.contextual else None
    for index, start in enumerate(range(0, n, shard_size)):
        stop = min(start + shard_size, n)
        if start in done:
            bar.update((stop - start) * per_item)
            continue
        tensors = engine.run(plan.items[start:stop], plan.token_ids[start:stop])
        if not config.contextual:
            bar.update(stop - start)
        name = write_shard(folder, index, tensors)
        manifest["shards"].append({"file": name, "start": start, "stop": stop})
        manifest["shards"].sort(key=lambda s: s["start"])
        write_manifest(folder, manifest)
    bar.close()
    engine.on_batch = None
    manifest["complete"] = True
    write_manifest(folder, manifest)
    return manifest


def _existing(folder: Path, digest: str) -> dict[str, Any] | None:
    """The manifest of a resumable run of the same plan, None for a fresh folder."""
    if is_cache(folder):
        manifest = read_manifest(folder)
        if manifest.get("plan_hash") != digest:
            raise ConvergentError(
                f"{folder}: holds a different extraction (model, sites, items, templates, "
                "pooling or dtype differ); choose another --out or delete it"
            )
        return manifest
    if folder.exists() and (not folder.is_dir() or any(
            p.name not in (LOCK, WORKERS) for p in folder.iterdir())):
        raise ConvergentError(f"{folder}: exists and is not an extraction cache; "
                              "choose an empty or new folder")
    return None
