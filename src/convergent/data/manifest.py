"""``manifest.json`` of a prepared-data folder: what was prepared, from what, and how.

The manifest is rewritten (atomically) after every shard with ``complete: false`` and a
last time with ``complete: true``; only the shards it lists are ever read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError

KIND = "convergent-prepared-data"
FORMAT = 1
MANIFEST = "manifest.json"


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConvergentError(f"{path}: cannot read the prepared-data manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise ConvergentError(f"{folder}: not a folder made by convergent data prepare")
    if manifest.get("format") != FORMAT:
        raise ConvergentError(
            f"{folder}: prepared-data format {manifest.get('format')}, this version reads "
            f"format {FORMAT}; prepare it again")
    return manifest


def manifest_sha256(folder: Path) -> str:
    """Hash of the manifest file (which holds every shard's hash): the data's identity."""
    return hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()


def check_request(folder: Path, manifest: dict[str, Any], request: dict[str, Any],
                  resuming: bool = False) -> None:
    """Raise one line when ``manifest`` was made for another corpus/tokenizer/config."""
    made = manifest.get("request", {})
    if request.get("revision") != made.get("revision") and "revision" in request:
        if resuming:
            raise ConvergentError(
                f"{folder}: the dataset revision changed under a resume ({made.get('revision')!r}"
                f" there, {request.get('revision')!r} now); pass --revision "
                f"{made.get('revision')} or prepare into a new folder")
        raise ConvergentError(
            f"{folder}: prepared from revision {made.get('revision')!r}, not "
            f"{request.get('revision')!r}; prepare into a new folder")
    for key, value in request.items():
        if key != "revision" and made.get(key) != value:
            raise ConvergentError(
                f"{folder}: the prepared data does not match: {key} is {made.get(key)!r} "
                f"there, {value!r} here; prepare into a new folder or change {key}")
