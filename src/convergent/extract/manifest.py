"""The JSON side of an extraction cache: ``cache.json`` (marker) and ``manifest.json``.

``manifest.json`` records the model (name, revision, weight hash), sites, dtype,
templates, pooling, the items with their token ids, the shards written so far and
whether the extraction is complete. Its ``plan`` part is what a resumed run must match.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.io import write_json_atomic

FORMAT = "convergent-extraction-cache"
VERSION = 1
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def plan_hash(plan: dict[str, Any]) -> str:
    """sha256 (16 hex digits) of the canonical JSON of a plan."""
    text = json.dumps(plan, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_cache(folder: Path) -> bool:
    return (folder / "cache.json").is_file() and (folder / "manifest.json").is_file()


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of the cache in ``folder``; a clear error if it is not one."""
    if not folder.is_dir():
        raise ConvergentError(f"{folder}: no such extraction cache folder")
    if not is_cache(folder):
        raise ConvergentError(f"{folder}: not an extraction cache (no cache.json/manifest.json)")
    try:
        marker = json.loads((folder / "cache.json").read_text())
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConvergentError(f"{folder}: unreadable cache manifest ({err})") from None
    if marker.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ConvergentError(
            f"{folder}: cache format {marker.get('format')!r} v{manifest.get('version')} "
            f"is not {FORMAT} v{VERSION}"
        )
    return manifest


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write the marker (once) and the manifest, both atomically."""
    if not (folder / "cache.json").is_file():
        write_json_atomic(folder / "cache.json", {"format": FORMAT, "version": VERSION})
    write_json_atomic(folder / "manifest.json", manifest)


def disk_bytes(n_items: int, widths: dict[str, int], dtype: str) -> int:
    """Bytes the shards of ``n_items`` rows at sites of these widths will take."""
    return n_items * sum(widths.values()) * BYTES[dtype]


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
