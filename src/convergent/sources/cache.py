"""An extraction cache (written by ``convergent extract``) read back as a source.

``cache:DIR`` or the folder itself (it holds ``cache.json`` and ``manifest.json``).
Sites are those extracted; ``layer:all`` means every cached layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.extract.manifest import read_manifest
from convergent.extract.shards import read_site
from convergent.extract.sites import parse_sites
from convergent.representation import Representation
from convergent.sources.base import reject_options


def cached_sites(manifest: dict[str, Any], raw: Sequence[str], where: str) -> list[str]:
    """Canonical names of the requested sites, each of which must be in the cache;
    ``layer:all`` means every cached layer."""
    have = list(manifest["plan"]["sites"])
    n_layers = int(manifest.get("meta", {}).get("n_layers", 10**6))
    wanted: list[str] = []
    for text in raw:
        for item in (p.strip() for p in str(text).split(",") if p.strip()):
            if item in ("layer:all", "layer.all"):
                names = [s for s in have if s.startswith("layer.")]
            else:
                names = parse_sites([item], n_layers)
            for site in names:
                if site not in have:
                    raise ConvergentError(f"{where}: site {site} was not extracted (cached: "
                                          f"{', '.join(have)}); extract it with --site")
                if site not in wanted:
                    wanted.append(site)
    if not wanted:
        raise ConvergentError(f"{where}: no site requested (cached: {', '.join(have)})")
    return wanted


def representations(folder: Path, manifest: dict[str, Any], labels: Sequence[Any] | None,
                    sites: Sequence[str], where: str) -> list[Representation]:
    """One Representation per site holding the requested labels that the cache has."""
    if not manifest.get("complete"):
        raise ConvergentError(f"{where}: the extraction is incomplete; run the same "
                              "`convergent extract` again to resume it")
    plan = manifest["plan"]
    all_labels = list(plan["labels"])
    if labels is None:
        rows = list(range(len(all_labels)))
    else:
        row_of = {label: i for i, label in enumerate(all_labels)}
        rows = [row_of[label] for label in labels if label in row_of]
    meta = {
        **manifest.get("meta", {}),
        "kind": "hf",
        "cache": str(folder),
        "templates": plan["templates"],
        "pooling": plan["pooling"],
        "dtype": plan["dtype"],
        "revision": plan.get("revision"),
        "weights_sha256": plan.get("weights_sha256"),
        "dropped": manifest.get("dropped", []),
    }
    tokens = _tokens(folder, manifest)
    out = []
    for site in cached_sites(manifest, sites, where):
        values = read_site(folder, manifest["shards"], site)[rows]
        static = site in ("embed", "unembed")
        ids = tokens["token_ids" if static else "context_token_ids"]
        out.append(Representation(
            values=values,
            labels=tuple(all_labels[i] for i in rows),
            source=str(plan.get("source")),
            site=site,
            token_ids=tuple(tuple(ids[i]) for i in rows),
            meta={**meta, "token_ids_from": "item alone" if static else
                  f"item in template {plan['templates'][0]!r}"},
        ))
    return out


def _tokens(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The items' token ids (own and in context), kept beside the manifest."""
    import json

    path = folder / str(manifest.get("tokens_file", "tokens.json"))
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as err:
        raise ConvergentError(f"{path}: cannot read the token ids ({err})") from None


@dataclass
class CacheSource:
    """A finished extraction cache: representations without loading any model."""

    name: str
    folder: Path
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.manifest["plan"]["kind"])

    def number_representations(self, numbers: Sequence[int],
                               sites: Sequence[str]) -> list[Representation]:
        if self.kind != "numbers":
            raise ConvergentError(f"{self.folder}: holds words, not numbers")
        return representations(self.folder, self.manifest, list(numbers), sites,
                               str(self.folder))

    def word_representations(self, words: Sequence[str] | None,
                             sites: Sequence[str]) -> list[Representation]:
        if self.kind != "words":
            raise ConvergentError(f"{self.folder}: holds numbers, not words")
        return representations(self.folder, self.manifest,
                               None if words is None else list(words), sites, str(self.folder))


def open_cache(path: str, **options: Any) -> CacheSource:
    """``cache:DIR``: an extraction cache folder (templates etc. are fixed at extraction)."""
    reject_options(f"cache:{path}", options)
    folder = Path(path)
    manifest = read_manifest(folder)
    return CacheSource(str(manifest["plan"].get("source") or folder.name), folder, manifest)
