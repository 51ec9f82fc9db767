"""The token stream behind ``tokens:X`` and ``cooc:X``: a run's data, prepared data, or a corpus.

``X`` is a run folder made by ``convergent train`` (the prepared data and tokenizer it
recorded in ``data/corpus.json``, with its swap or unigram perturbation applied, as it was
trained on), a folder made by ``convergent data prepare``, or a corpus spec (``bundled``,
a file or folder, ``hf:...``) prepared through :func:`convergent.train.stream.prepared_for`
with the quick preset's settings: the same content-addressed cache, so ``bundled`` with the
default ``bpe`` tokenizer and 2048 entries is exactly the stream the quick neural runs train
on, and ``tokenizer=word`` the quick word2vec/PPMI runs' stream (200,000 entries).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError

CORPUS_OPTIONS = ("tokenizer", "vocab_size", "max_documents")


@dataclass(frozen=True, eq=False)
class TokenStream:
    """A 1-D token array (memmap or :class:`~convergent.data.ShardedStream`), its tokenizer,
    its end-of-text id and where it came from (``meta``: scalars only)."""

    label: str
    stream: Any
    tokenizer: Any = field(repr=False)
    eos: int | None
    meta: dict[str, Any]


def open_token_stream(spec: str, tokenizer: str | None = None, vocab_size: int | None = None,
                      max_documents: int | None = None, progress: bool = True) -> TokenStream:
    """Resolve ``spec`` (see the module docstring); the corpus options apply to corpus specs."""
    path = Path(spec)
    given = {k: v for k, v in (("tokenizer", tokenizer), ("vocab_size", vocab_size),
                               ("max_documents", max_documents)) if v is not None}
    if path.is_dir() and ((path / "config.json").is_file() or (path / "manifest.json").is_file()):
        if given:
            raise ConvergentError(
                f"{spec}: option(s) {', '.join(sorted(given))} apply to corpus specs only; a "
                "run or prepared-data folder fixes its own tokenizer")
        if (path / "config.json").is_file():
            return _run_stream(path)
        return _prepared_stream(path)
    return _corpus_stream(spec, progress, **given)


def _prepared_stream(folder: Path) -> TokenStream:
    from convergent.data import open_prepared

    data = open_prepared(folder)
    return TokenStream(folder.name, data.stream(), data.tokenizer(), data.eos,
                       _data_meta(data, "prepared"))


def _data_meta(data: Any, kind: str) -> dict[str, Any]:
    manifest = data.manifest
    return {"stream": kind, "data": str(data.folder.resolve()), "manifest_sha256": data.sha256,
            "corpus": manifest["source"]["corpus"], "tokenizer": manifest["tokenizer"]["spec"],
            "tokenizer_sha256": manifest["tokenizer"]["sha256"],
            "vocab_size": int(manifest["tokenizer"]["size"])}


def _run_stream(run_dir: Path) -> TokenStream:
    """The stream a run trained on: its recorded prepared data (perturbed as it was)."""
    import numpy as np

    from convergent.train.perturb import parse_perturbation
    from convergent.train.tokenize import eos_id, load_tokenizer

    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConvergentError(f"{run_dir}: not a training run ({err})") from None
    tok_file = run_dir / "tokenizer.json"
    record_file = run_dir / "data" / "corpus.json"
    legacy = run_dir / "data" / "tokens.npy"
    if legacy.is_file() and tok_file.is_file():
        tok = load_tokenizer(tok_file)
        return TokenStream(run_dir.name, np.load(legacy, mmap_mode="r"), tok, eos_id(tok),
                           {"stream": "run", "run": str(run_dir), "corpus": config.get("corpus"),
                            "tokenizer": config.get("tokenizer")})
    if not record_file.is_file() or not tok_file.is_file():
        raise ConvergentError(
            f"{run_dir}: the run records no training data (data/corpus.json and "
            "tokenizer.json); addition runs have no text stream")
    record = json.loads(record_file.read_text())
    from convergent.data import open_prepared

    data = open_prepared(record["data"])
    if data.sha256 != record.get("manifest_sha256"):
        raise ConvergentError(
            f"{run_dir}: its prepared data {record['data']} changed since the run used it "
            "(manifest hash differs)")
    tok = load_tokenizer(tok_file)
    meta = {**_data_meta(data, "run"), "run": str(run_dir), "perturb": config.get("perturb")}
    stream = data.stream()
    pert = parse_perturbation(config.get("perturb"), config.get("arch", "transformer"))
    if pert.kind in ("swap", "swap-global", "unigram"):
        from convergent.data.perturbed import perturbed_stream

        stream = perturbed_stream(data, pert.kind, int(config.get("seed", 0)), tok)
    return TokenStream(run_dir.name, stream, tok, data.eos, meta)


def _corpus_stream(spec: str, progress: bool, tokenizer: str = "bpe",
                   vocab_size: int | None = None, max_documents: int = 0) -> TokenStream:
    """``spec`` prepared (or found in the cache) as the quick preset would prepare it."""
    from convergent.data import PreparedData
    from convergent.train.presets import preset
    from convergent.train.stream import prepared_for

    arch = "ppmi" if tokenizer == "word" else "transformer"  # word: the classical runs' stream
    config = preset("quick", arch, corpus=spec, tokenizer=tokenizer, vocab_size=vocab_size,
                    max_documents=max_documents)
    data: PreparedData = prepared_for(config, progress)
    default = preset("quick", arch)
    shown = [f"{key}={getattr(config, key)}" for key in CORPUS_OPTIONS
             if getattr(config, key) != getattr(default, key)]  # non-default ones name it
    stream = _prepared_stream(data.folder)
    return TokenStream(",".join([spec, *shown]), stream.stream, stream.tokenizer, stream.eos,
                       {**stream.meta, "stream": "corpus"})
