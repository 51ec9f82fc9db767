"""Chunked addition: k-digit operands written as k/c tokens of c digits each.

Format (one sequence per problem, token ids below)::

    <bos> a_1 .. a_m + b_1 .. b_m = <answer>

``m = digits / chunk`` chunks per operand, most significant first; every chunk is one
token whose id is its value 0 .. 10**chunk - 1 (token text: the plain decimal, e.g. "7"
for the chunk "007"). Two answer formats (``answer``):

- ``"carry-mod"``: the sum in base 10**chunk with m + 1 chunks ``s_0 s_1 .. s_m``: the lead
  chunk ``s_0`` is the final carry (0 or 1) and ``s_i = (a_i + b_i + carry_i) mod
  10**chunk`` with ``carry_i`` the carry out of the chunks to its right (Fu et al. 2026's
  multi-token addition). With ``final_carry=False`` the lead chunk is dropped: the answer
  is the sum mod 10**digits.
- ``"whole"`` (single-token tasks only, ``digits == chunk``): the whole sum a + b as ONE
  token, ids 0 .. 2 * (10**chunk - 1), so no output position is a sum mod 10**chunk: the
  paper's single-token control ("no modular constraint").

The default (``answer=None``) is the paper's format for the size: ``"whole"`` for
single-token tasks, ``"carry-mod"`` for multi-token ones (and whenever
``final_carry=False``). ``digits=9, chunk=3`` is the paper's multi-token addition,
``digits=3, chunk=3`` its single-token addition. ``reverse=True`` writes a multi-token
answer least significant chunk first (an easier, documented variant; not the paper's); a
one-token answer has no order, so it is stored as ``False`` there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from convergent.errors import ConvergentError

PLUS, EQUALS, BOS = "+", "=", "<|endoftext|>"
MAX_CHUNK = 3
ANSWER_FORMATS = ("whole", "carry-mod")


def check_answer_format(answer: object) -> str:
    """``answer`` if it names an answer format, else an error listing the valid ones."""
    if answer not in ANSWER_FORMATS:
        raise ConvergentError(f"addition answer format {answer!r}: choose one of "
                              f"{', '.join(ANSWER_FORMATS)}")
    return str(answer)


@dataclass(frozen=True)
class AdditionTask:
    """The format of one addition task (see the module docstring)."""

    digits: int = 9
    chunk: int = 3
    final_carry: bool = True
    reverse: bool = False
    answer: str | None = None

    def __post_init__(self) -> None:
        if self.answer is None:
            default = "whole" if self.digits == self.chunk and self.final_carry else "carry-mod"
            object.__setattr__(self, "answer", default)
        check_answer_format(self.answer)
        if not 1 <= self.chunk <= MAX_CHUNK:
            raise ConvergentError(f"chunk {self.chunk}: must be 1..{MAX_CHUNK} digits")
        if self.digits < 1 or self.digits % self.chunk:
            raise ConvergentError(
                f"digits {self.digits}: must be a positive multiple of the chunk size "
                f"{self.chunk}")
        if self.digits > 18:
            raise ConvergentError(f"digits {self.digits}: at most 18 (int64 operands)")
        if self.answer == "whole":
            if self.digits != self.chunk:
                raise ConvergentError(
                    f"answer 'whole' needs a single-token task (digits == chunk), not "
                    f"{self.digits} digits in chunks of {self.chunk}; use 'carry-mod'")
            if not self.final_carry:
                raise ConvergentError("final_carry=False applies to the 'carry-mod' answer "
                                      "only (a 'whole' answer is the full sum)")
            object.__setattr__(self, "reverse", False)  # one answer token: no order

    # sizes and special ids -------------------------------------------------------------
    @property
    def base(self) -> int:
        return 10 ** self.chunk

    @property
    def chunks(self) -> int:
        """Chunks per operand."""
        return self.digits // self.chunk

    @property
    def answer_len(self) -> int:
        if self.answer == "whole":
            return 1
        return self.chunks + (1 if self.final_carry else 0)

    @property
    def number_tokens(self) -> int:
        """Number tokens 0 .. number_tokens-1: the chunk values, and for a 'whole' answer
        the sums up to 2 * (base - 1) as well (operands stay 0 .. base-1)."""
        return 2 * self.base - 1 if self.answer == "whole" else self.base

    @property
    def plus_id(self) -> int:
        return self.number_tokens

    @property
    def equals_id(self) -> int:
        return self.number_tokens + 1

    @property
    def bos_id(self) -> int:
        return self.number_tokens + 2

    @property
    def vocab_size(self) -> int:
        return self.number_tokens + 3

    @property
    def seq_len(self) -> int:
        """Tokens per problem, <bos> included."""
        return 3 + 2 * self.chunks + self.answer_len

    @property
    def answer_start(self) -> int:
        """Position of the first answer token in a sequence."""
        return self.seq_len - self.answer_len

    @property
    def name(self) -> str:
        kind = "single-token" if self.chunks == 1 else "multi-token"
        variant = ", carry-mod answer" if self.chunks == 1 and self.answer == "carry-mod" \
            else ""
        return f"{self.digits}-digit {kind} (chunk {self.chunk}{variant})"

    @property
    def spec(self) -> str:
        """A compact id: ``addition-d9c3`` plus ``-carrymod`` (a single-token task with the
        carry-mod answer), ``-nocarry`` and ``-rev`` for the variants."""
        carrymod = self.chunks == 1 and self.answer == "carry-mod"
        flags = ("-carrymod" if carrymod else "") + ("" if self.final_carry else "-nocarry") \
            + ("-rev" if self.reverse else "")
        return f"addition-d{self.digits}c{self.chunk}{flags}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # arithmetic ------------------------------------------------------------------------
    def split(self, values: np.ndarray) -> np.ndarray:
        """Chunks [n, m] of operands [n], most significant first."""
        v = np.asarray(values, dtype=np.int64)
        powers = self.base ** np.arange(self.chunks - 1, -1, -1, dtype=np.int64)
        return (v[:, None] // powers) % self.base

    def join(self, chunks: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`split` for [n, m'] chunks (any m')."""
        c = np.asarray(chunks, dtype=np.int64)
        powers = self.base ** np.arange(c.shape[1] - 1, -1, -1, dtype=np.int64)
        return c @ powers

    def answer_chunks(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Answer tokens [n, answer_len] as written: the whole sum (one token), or chunk-wise
        addition with carries."""
        if self.answer == "whole":
            return (np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64))[:, None]
        ca, cb = self.split(a), self.split(b)
        n = ca.shape[0]
        out = np.zeros((n, self.chunks + 1), dtype=np.int64)
        carry = np.zeros(n, dtype=np.int64)
        for i in range(self.chunks - 1, -1, -1):
            total = ca[:, i] + cb[:, i] + carry
            out[:, i + 1] = total % self.base
            carry = total // self.base
        out[:, 0] = carry
        answer = out if self.final_carry else out[:, 1:]
        return answer[:, ::-1].copy() if self.reverse else answer

    def answer_value(self, answer: np.ndarray) -> np.ndarray:
        """The integer an answer-token array [n, answer_len] denotes."""
        if self.answer == "whole":
            return np.asarray(answer, dtype=np.int64)[:, 0].copy()
        ordered = answer[:, ::-1] if self.reverse else answer
        return self.join(ordered)

    # sequences -------------------------------------------------------------------------
    def encode(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Token ids [n, seq_len] of the problems a + b."""
        a, b = self._operands(a), self._operands(b)
        n = len(a)
        col = np.full((n, 1), 0, dtype=np.int64)
        return np.concatenate([col + self.bos_id, self.split(a), col + self.plus_id,
                               self.split(b), col + self.equals_id,
                               self.answer_chunks(a, b)], axis=1)

    def decode(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(a, b, answer value) of token-id rows [n, seq_len]; checks the layout."""
        ids = np.atleast_2d(np.asarray(ids, dtype=np.int64))
        if ids.shape[1] != self.seq_len:
            raise ConvergentError(
                f"{self.spec}: sequences have {self.seq_len} tokens, got {ids.shape[1]}")
        m = self.chunks
        fixed = {0: self.bos_id, 1 + m: self.plus_id, 2 + 2 * m: self.equals_id}
        for pos, tid in fixed.items():
            if (ids[:, pos] != tid).any():
                raise ConvergentError(f"{self.spec}: token {pos} must be id {tid}")
        operands = np.delete(ids[:, :self.answer_start], list(fixed), axis=1)
        if (operands >= self.base).any() or (operands < 0).any():
            raise ConvergentError(f"{self.spec}: an operand chunk is outside 0..{self.base - 1}")
        answer = ids[:, self.answer_start:]
        if (answer >= self.number_tokens).any() or (answer < 0).any():
            raise ConvergentError(
                f"{self.spec}: an answer token is outside 0..{self.number_tokens - 1}")
        a = self.join(ids[:, 1:1 + m])
        b = self.join(ids[:, 2 + m:2 + 2 * m])
        return a, b, self.answer_value(ids[:, self.answer_start:])

    def _operands(self, values: Any) -> np.ndarray:
        v = np.atleast_1d(np.asarray(values, dtype=np.int64))
        if v.ndim != 1 or (v < 0).any() or (v >= 10 ** self.digits).any():
            raise ConvergentError(
                f"{self.spec}: operands must be integers in 0..{10 ** self.digits - 1}")
        return v

    # text ------------------------------------------------------------------------------
    def to_text(self, ids: np.ndarray) -> str:
        """Readable form of one sequence, chunks zero-padded: ``123,000,456+...=0,...``
        (a 'whole' answer is one number padded to the chunk width: ``123+456=579``)."""
        ids = np.asarray(ids, dtype=np.int64)
        m = self.chunks

        def chunks(part: np.ndarray) -> str:
            return ",".join(f"{int(c):0{self.chunk}d}" for c in part)

        a, b = ids[1:1 + m], ids[2 + m:2 + 2 * m]
        return f"{chunks(a)}{PLUS}{chunks(b)}{EQUALS}{chunks(ids[self.answer_start:])}"

    def from_text(self, text: str) -> np.ndarray:
        """Token ids of a string written by :meth:`to_text` (answer included)."""
        try:
            left, answer = text.split(EQUALS)
            a, b = left.split(PLUS)
            parts = [a.split(","), b.split(","), answer.split(",")]
            widths = (self.chunks, self.chunks, self.answer_len)
            if any(len(p) != w for p, w in zip(parts, widths, strict=True)):
                raise ValueError("wrong number of chunks")
            if any(len(c) != self.chunk or not c.isdigit() for p in parts[:2] for c in p):
                raise ValueError(f"chunks must have {self.chunk} digits")
            if any(len(c) < self.chunk or not c.isdigit() or int(c) >= self.number_tokens
                   for c in parts[2]):
                raise ValueError(f"answer tokens are {self.chunk}-digit numbers below "
                                 f"{self.number_tokens}")
        except ValueError as err:
            raise ConvergentError(f"{text!r} is not a {self.spec} problem ({err})") from None
        nums = [[int(c) for c in p] for p in parts]
        return np.array([self.bos_id, *nums[0], self.plus_id, *nums[1], self.equals_id,
                         *nums[2]], dtype=np.int64)

    def tokenizer(self):
        """A ``tokenizers.Tokenizer`` with "0".."N-1" at ids 0..N-1 (N = number_tokens), so
        runs stay sources."""
        from tokenizers import Tokenizer, models, pre_tokenizers

        vocab = {str(n): n for n in range(self.number_tokens)}
        vocab.update({PLUS: self.plus_id, EQUALS: self.equals_id, BOS: self.bos_id})
        tok = Tokenizer(models.WordLevel(vocab))  # unknown text is an encode error
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        return tok
