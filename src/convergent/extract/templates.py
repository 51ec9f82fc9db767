"""Placing numbers and words in context, and finding their tokens there.

A template holds one placeholder: ``{n}`` for numbers, ``{w}`` for words, ``{}`` for the
subjects of a relation (the slot of LRE's ``prompt_templates``). Each item is put
into every template; the engine takes the state at the item's tokens (the last one, or the
mean over them) and averages over templates. Tokens are located through the fast
tokenizer's character offsets, so this works for digit tokenizers (SmolLM2 writes 42 as
``4``, ``2``) as well as for tokenizers with single-token numbers (BERT's WordPiece).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from convergent.errors import ConvergentError

#: Default contexts for numbers: bare, named, counted, assigned. The number's own tokens
#: are the last ones in three of them, so a causal model's state there sees the context.
DEFAULT_NUMBER_TEMPLATES: tuple[str, ...] = (
    "{n}",
    "The number {n}",
    "I counted {n} apples.",
    "x = {n}",
)
#: Default contexts for words.
DEFAULT_WORD_TEMPLATES: tuple[str, ...] = (
    "{w}",
    "The word {w}",
    "I thought about the {w} today.",
)
#: A relation's subject alone (LRE reads it inside the relation's own prompt templates).
DEFAULT_SUBJECT_TEMPLATES: tuple[str, ...] = ("{}",)
PLACEHOLDER = {"numbers": "{n}", "words": "{w}", "subjects": "{}"}
DEFAULTS = {"numbers": DEFAULT_NUMBER_TEMPLATES, "words": DEFAULT_WORD_TEMPLATES,
            "subjects": DEFAULT_SUBJECT_TEMPLATES}


def check_templates(templates: Sequence[str] | None, kind: str) -> tuple[str, ...]:
    """Templates to use for ``kind`` ("numbers", "words" or "subjects"); each holds the
    placeholder once."""
    mark = PLACEHOLDER[kind]
    if templates is None:
        return DEFAULTS[kind]
    chosen = tuple(templates)
    if not chosen:
        raise ConvergentError("--template: give at least one template")
    for template in chosen:
        count = template.count(mark)
        if count != 1:
            what = "no" if count == 0 else f"{count}"
            raise ConvergentError(
                f"template {template!r} has {what} {mark} placeholder(s); it needs exactly one"
            )
    if len(set(chosen)) != len(chosen):
        raise ConvergentError("--template: the same template was given twice")
    return chosen


def render(template: str, item: str, kind: str) -> tuple[str, tuple[int, int]]:
    """The text and the character span ``[start, end)`` of ``item`` in it."""
    mark = PLACEHOLDER[kind]
    start = template.index(mark)
    text = template[:start] + item + template[start + len(mark):]
    return text, (start, start + len(item))


@dataclass(frozen=True)
class Encoded:
    """One context: its token ids and the positions of the item's tokens."""

    ids: tuple[int, ...]
    positions: tuple[int, ...]

    @property
    def item_ids(self) -> tuple[int, ...]:
        return tuple(self.ids[p] for p in self.positions)


def encode(tokenizer: Any, text: str, span: tuple[int, int], special: bool = True) -> Encoded:
    """Tokenize ``text``; the item's tokens are those whose characters overlap ``span``."""
    enc = tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
    ids = tuple(int(i) for i in enc["input_ids"])
    start, end = span
    positions = tuple(
        p for p, (a, b) in enumerate(enc["offset_mapping"]) if b > a and a < end and b > start
    )
    if not positions:
        raise ConvergentError(f"{text!r}: no token covers characters {start}..{end}")
    return Encoded(ids, positions)


def require_fast(tokenizer: Any, name: str) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ConvergentError(
            f"{name}: its tokenizer is not a fast (Rust) tokenizer, so the tokens of a number "
            "cannot be located by character offsets"
        )


def own_tokens(tokenizer: Any, item: str) -> tuple[int, ...]:
    """Token ids of the item alone (no special tokens, no leading space)."""
    ids = tokenizer(item, add_special_tokens=False)["input_ids"]
    return tuple(int(i) for i in ids)


def single_token_report(tokenizer: Any, numbers: Sequence[int]) -> dict[str, Any]:
    """Which numbers are one token bare (``42``) and after a space (`` 42``).

    A leading space that the tokenizer keeps as its own token (SmolLM2 writes `` 42`` as
    ``Ġ``, ``4``, ``2``) is not counted against the number; the unknown token never counts.
    """
    space_ids = set(tokenizer(" ", add_special_tokens=False)["input_ids"])
    unk = getattr(tokenizer, "unk_token_id", None)
    bare, spaced = [], []
    for n in numbers:
        ids = own_tokens(tokenizer, str(n))
        if len(ids) == 1 and ids[0] != unk:
            bare.append(int(n))
        ids = tuple(i for i in own_tokens(tokenizer, f" {n}") if i not in space_ids)
        if len(ids) == 1 and ids[0] != unk:
            spaced.append(int(n))
    return {
        "checked": len(numbers),
        "single_token_bare": len(bare),
        "single_token_space": len(spaced),
        "bare_ranges": ranges(bare),
        "space_ranges": ranges(spaced),
    }


def ranges(values: Sequence[int]) -> str:
    """``0..9, 11, 20..25``: a compact text form of sorted integers."""
    parts: list[str] = []
    vals = sorted(set(values))
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        parts.append(str(vals[i]) if i == j else f"{vals[i]}..{vals[j]}")
        i = j + 1
    return ", ".join(parts) if parts else "none"
