"""Tokenizers trained with Hugging Face ``tokenizers`` and saved in each run.

- ``bpe``: byte-level BPE; every digit string of length 1-3 ("0".."999", and "00".."099")
  is one token and digit runs split left to right into chunks of up to three digits, as in
  Llama 3 ("12345" -> "123", "45"). Done by adding the 1110 digit strings as added tokens
  (matched leftmost-longest before pre-tokenization) and isolating single digits in the BPE
  pre-tokenizer so no other token contains a digit.
- ``digit``: the same BPE without the added digit strings: each digit is its own token.
- ``word``: lower-cased word level (digit runs, letter runs and single punctuation marks
  are words) for word2vec and PPMI; words rarer than ``min_count`` map to ``[UNK]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from convergent.errors import ConvergentError

EOS = "<|endoftext|>"
UNK = "[UNK]"
DIGIT_STRINGS = tuple(
    [str(d) for d in range(10)]
    + [f"{n:02d}" for n in range(100)]
    + [f"{n:03d}" for n in range(1000)]
)
WORD_PATTERN = r"\d+|[^\W\d_]+|[^\w\s]"


def train_tokenizer(kind: str, texts: Sequence[str], vocab_size: int, min_count: int = 5):
    """Train a ``tokenizers.Tokenizer`` of ``kind`` (bpe, digit, word) on ``texts``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if kind in ("bpe", "digit"):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
        tok.decoder = decoders.ByteLevel()
        budget = vocab_size - (len(DIGIT_STRINGS) - 10 if kind == "bpe" else 0)
        trainer = trainers.BpeTrainer(
            vocab_size=budget, special_tokens=[EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        if kind == "bpe":
            tok.add_tokens([d for d in DIGIT_STRINGS if tok.token_to_id(d) is None])
    elif kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="isolated"),
        ])
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size, min_frequency=min_count, special_tokens=[UNK, EOS],
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
    else:
        raise ConvergentError(f"tokenizer {kind!r}: choose bpe, digit or word")
    return tok


def load_tokenizer(path: str | Path):
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:
        raise ConvergentError(f"{path}: cannot read the tokenizer ({err})") from None


EOS_NAMES = (EOS, "<|end_of_text|>", "</s>", "<eos>", "<|eos|>", "[SEP]")


def eos_id(tok) -> int:
    """Id of the end-of-text token (ours, or a named tokenizer's usual spellings)."""
    for name in EOS_NAMES:
        tid = tok.token_to_id(name)
        if tid is not None:
            return int(tid)
    raise ConvergentError(
        f"the tokenizer has no end-of-text token (looked for {', '.join(EOS_NAMES)})")


def encode_batch(tok, texts: Sequence[str], eos: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, lengths) of ``texts`` encoded with Rust batch encoding, EOS after each text."""
    encodings = tok.encode_batch(list(texts), add_special_tokens=False)
    lengths = np.fromiter((len(e.ids) + 1 for e in encodings), dtype=np.int64,
                          count=len(encodings))
    ids = np.full(int(lengths.sum()), eos, dtype=np.int64)
    ends = np.cumsum(lengths)
    for enc, end, n in zip(encodings, ends, lengths, strict=True):
        ids[end - n:end - 1] = enc.ids
    return ids, lengths


def encode_documents(tok, texts: Iterable[str], batch: int = 256) -> np.ndarray:
    """One token stream: each document's ids followed by the end-of-text token."""
    eos = eos_id(tok)
    texts = list(texts)
    parts = [encode_batch(tok, texts[start:start + batch], eos)[0].astype(np.int32)
             for start in range(0, len(texts), batch)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)


def number_token_ids(tok, numbers: Iterable[int]) -> dict[int, int]:
    """Numbers whose canonical decimal string is one token -> that token's id."""
    found = {}
    for n in numbers:
        tid = tok.token_to_id(str(n))
        if tid is not None and tok.decode([tid]).strip() == str(n):
            found[int(n)] = int(tid)
    return found


def digit_token_ids(tok) -> np.ndarray:
    """Ids of every token whose text is a run of ASCII digits (the "number tokens")."""
    ids = []
    for text, tid in tok.get_vocab().items():
        shown = tok.decode([tid]).strip()
        if shown.isascii() and shown.isdigit() and text.isascii():
            ids.append(tid)
    return np.unique(np.asarray(ids, dtype=np.int64))
