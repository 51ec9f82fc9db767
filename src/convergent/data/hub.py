"""Tokenizers given by name rather than trained here: ``hf:ORG/NAME`` or a ``tokenizer.json``."""

from __future__ import annotations

from pathlib import Path

from convergent.errors import ConvergentError


def load_named_tokenizer(spec: str):
    """A ``tokenizers.Tokenizer`` for ``hf:ORG/NAME`` (hub id or local folder) or a file.

    Hub names go through ``tokenizers.Tokenizer.from_pretrained`` and, for repositories
    without a ``tokenizer.json``, ``transformers.AutoTokenizer`` (its fast backend).
    """
    from tokenizers import Tokenizer

    if not spec.startswith("hf:"):
        if not Path(spec).is_file():
            raise ConvergentError(f"tokenizer {spec!r}: no such tokenizer.json file")
        try:
            return Tokenizer.from_file(spec)
        except Exception as err:
            raise ConvergentError(f"tokenizer {spec!r}: cannot read it ({err})") from None
    name = spec[3:]
    if (Path(name) / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(Path(name) / "tokenizer.json"))
    try:
        return Tokenizer.from_pretrained(name)
    except Exception as first:
        try:
            from transformers import AutoTokenizer

            backend = getattr(AutoTokenizer.from_pretrained(name), "backend_tokenizer", None)
        except Exception:
            backend = None
        if backend is None:
            raise ConvergentError(
                f"tokenizer {spec!r}: cannot load it from the Hugging Face hub ({first}); "
                "check the name, your access to it and the network") from None
        return backend


def resolve_revision(spec: str, revision: str | None) -> str | None:
    """The commit a ``hf:NAME...`` dataset's ``revision`` (None: the default branch) is at
    now, so that a preparation reads one fixed commit; None when the hub cannot be asked
    (offline, no ``huggingface_hub``) or for corpora that are not on the hub."""
    if not spec.startswith("hf:"):
        return None
    name = spec[3:].partition("@")[0].partition(":")[0]
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(name, revision=revision, timeout=20).sha
    except Exception:
        return None
