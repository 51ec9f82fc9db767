"""Readers of pairs files as researchers publish them; the format is detected from the file
or named (``--pairs-format``):

- ``tsv``: ``subject<TAB>object<TAB>relation`` (optional header), or JSONL with those keys;
- ``park``: Park et al.'s ``word_pairs/[A - B].txt``, ``subject<TAB>object`` per line, the
  relation is the file's name; a file or a flat folder of them;
- ``bats``: BATS folders (category subfolders of such files); in both, ``a/b`` in the object
  column lists several objects of the subject;
- ``lre``: Hernandez et al.'s relation JSON (``name``, ``prompt_templates`` with ``{}`` for
  the subject, ``samples`` of ``subject``/``object``), a file or a folder searched
  recursively; templates are kept;
- ``contexts``: Park's paired-contexts JSONL (``word0``, ``word1``, ``contexts0``,
  ``contexts1``), the relation is the file's name; a file or a folder.

Bad input raises :class:`ConvergentError` naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.linearity.pairs import Contexts, Pair, PairSet

FORMATS = ("tsv", "park", "bats", "lre", "contexts")
SUBJECT_SLOT = "{}"


def read_pairs(path: str | Path, fmt: str | None = None) -> PairSet:
    """The pairs of a file or folder, in format ``fmt`` (detected when None)."""
    root = Path(path)
    if not root.exists():
        raise ConvergentError(f"{path}: no such pairs file or folder")
    if fmt is not None and fmt not in FORMATS:
        raise ConvergentError(f"--pairs-format {fmt}: expected one of {', '.join(FORMATS)}")
    fmt = fmt or detect_format(root)
    return _READERS[fmt](root)


def detect_format(root: Path) -> str:
    """The format of a pairs file or folder (raises naming the file and line if unknown)."""
    if root.is_dir():
        files = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")]
        suffixes = {p.suffix.lower() for p in files}
        if ".json" in suffixes:
            return "lre"
        if ".jsonl" in suffixes:
            return "contexts"
        txt = [p for p in files if p.suffix.lower() == ".txt"]
        if txt:
            return "bats" if any(p.parent != root for p in txt) else "park"
        raise ConvergentError(f"{root}: no pairs files (.txt, .json, .jsonl) in the folder")
    text = _text(root)
    number, line = _first_line(text)
    if line is None:
        raise ConvergentError(f"{root}: no pairs in the file")
    if line.lstrip().startswith("{"):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict) and not _keys_of_a_row(whole):
            return "lre"
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and _keys_of_a_row(row):
            return _keys_of_a_row(row)
    else:
        fields = len(line.rstrip("\r\n").split("\t"))
        if fields in (2, 3):
            return "park" if fields == 2 else "tsv"
    raise ConvergentError(
        f"{root}:{number}: not a pairs file of a known format (tsv: subject, object, relation "
        "tab-separated; park: subject, object; lre: a JSON relation; contexts: JSONL with "
        "word0, word1, contexts0, contexts1); name one with --pairs-format"
    )


def _keys_of_a_row(row: dict[str, Any]) -> str:
    if "word0" in row:
        return "contexts"
    if "subject" in row and "samples" not in row:
        return "tsv"
    return ""


def _text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConvergentError(f"{file}: not UTF-8 text ({err.reason})") from None


def _first_line(text: str) -> tuple[int, str | None]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.startswith("#"):
            return number, line
    return 0, None


def _lines(file: Path) -> list[tuple[int, str]]:
    """Numbered lines with content (blank and ``#`` lines skipped)."""
    return [(n, line) for n, line in enumerate(_text(file).splitlines(), start=1)
            if line.strip() and not line.startswith("#")]


def _files(root: Path, suffix: str, recursive: bool) -> list[Path]:
    if root.is_file():
        return [root]
    found = sorted(root.rglob(f"*{suffix}") if recursive else root.glob(f"*{suffix}"))
    files = [p for p in found if p.is_file() and not p.name.startswith(".")]
    if not files:
        raise ConvergentError(f"{root}: no {suffix} files in the folder")
    return files


def _pair_set(root: Path, fmt: str, relations: dict[str, list[Pair]], **extra: Any) -> PairSet:
    if not any(relations.values()):
        raise ConvergentError(f"{root}: no pairs in the file")
    return PairSet(root.stem if root.is_file() else root.name,
                   {r: tuple(p) for r, p in relations.items() if p}, format=fmt, **extra)


def read_tsv(root: Path) -> PairSet:
    """``subject<TAB>object<TAB>relation`` lines (optional header) or JSONL with those keys."""
    if root.is_dir():
        raise ConvergentError(f"{root}: the tsv format reads one file, not a folder")
    relations: dict[str, list[Pair]] = {}
    for number, line in _lines(root):
        if line.lstrip().startswith("{"):
            try:
                row = json.loads(line)
                subject, obj, rel = row["subject"], row["object"], row["relation"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ConvergentError(
                    f"{root}:{number}: expected a JSON object with keys subject, object, "
                    "relation"
                ) from None
        else:
            parts = line.split("\t")
            if len(parts) != 3:
                raise ConvergentError(
                    f"{root}:{number}: expected 3 tab-separated fields "
                    f"(subject, object, relation), got {len(parts)}"
                )
            subject, obj, rel = (p.strip() for p in parts)
            if number == 1 and (subject, obj, rel) == ("subject", "object", "relation"):
                continue
        if not all(isinstance(x, str) and x for x in (subject, obj, rel)):
            raise ConvergentError(f"{root}:{number}: empty subject, object or relation")
        relations.setdefault(rel, []).append((subject, obj))
    return _pair_set(root, "tsv", relations)


def _two_columns(file: Path) -> list[Pair]:
    """``subject<TAB>object`` lines; ``a/b`` in the object column gives one pair per object."""
    pairs: list[Pair] = []
    for number, line in _lines(file):
        parts = line.split("\t")
        if len(parts) != 2:
            raise ConvergentError(f"{file}:{number}: expected 2 tab-separated fields "
                                  f"(subject, object), got {len(parts)}")
        subject = parts[0].strip()
        objects = [o.strip() for o in parts[1].split("/") if o.strip()]
        if not subject or not objects:
            raise ConvergentError(f"{file}:{number}: empty subject or object")
        pairs += [(subject, o) for o in objects]
    return pairs


def read_park(root: Path) -> PairSet:
    """Park et al.'s word pairs: a file or a flat folder of ``.txt`` files, relation = name."""
    return _pair_set(root, "park", {f.stem: _two_columns(f)
                                    for f in _files(root, ".txt", recursive=False)})


def read_bats(root: Path) -> PairSet:
    """BATS: ``.txt`` files of subject and ``/``-separated objects in category subfolders."""
    relations: dict[str, list[Pair]] = {}
    for f in _files(root, ".txt", recursive=True):
        relations.setdefault(f.stem, []).extend(_two_columns(f))
    return _pair_set(root, "bats", relations)


def _line_of(text: str, needle: str, start: int = 0) -> int:
    at = text.find(needle, start)
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


def _template_line(text: str, template: Any) -> int:
    start = text.find('"prompt_templates"')
    return _line_of(text, json.dumps(template), max(start, 0)) if isinstance(template, str) else 1


def check_template(template: Any, where: str) -> str:
    """``template`` if it is a string with one ``{}`` subject slot, else raise (``where``:
    file and line)."""
    slots = template.count(SUBJECT_SLOT) if isinstance(template, str) else 0
    if slots != 1:
        what = "no subject slot" if slots == 0 else f"{slots} subject slots"
        raise ConvergentError(f"{where}: template {template!r} has {what} {SUBJECT_SLOT}; "
                              "it needs exactly one")
    return template


def _lre_relation(file: Path) -> tuple[str, list[Pair], tuple[str, ...]]:
    text = _text(file)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConvergentError(f"{file}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise ConvergentError(f"{file}:1: expected a JSON relation object (name, "
                              "prompt_templates, samples)")
    samples = data.get("samples")
    if not isinstance(samples, list) or not samples:
        line = _line_of(text, '"samples"')
        raise ConvergentError(f"{file}:{line}: a JSON relation without samples")
    pairs: list[Pair] = []
    for k, row in enumerate(samples):
        subject = row.get("subject") if isinstance(row, dict) else None
        obj = row.get("object") if isinstance(row, dict) else None
        objects = obj if isinstance(obj, list) else [obj]
        if not (isinstance(subject, str) and subject.strip() and objects
                and all(isinstance(o, str) and o.strip() for o in objects)):
            line = _line_of(text, json.dumps(subject)) if isinstance(subject, str) else 1
            raise ConvergentError(f"{file}:{line}: sample {k} needs a subject and an object "
                                  "(strings)")
        pairs += [(subject.strip(), o.strip()) for o in objects]
    raw = data.get("prompt_templates", [])
    if not isinstance(raw, list):
        line = _line_of(text, '"prompt_templates"')
        raise ConvergentError(f"{file}:{line}: prompt_templates is not a list")
    templates = tuple(check_template(t, f"{file}:{_template_line(text, t)}") for t in raw)
    name = data.get("name")
    return (name if isinstance(name, str) and name.strip() else file.stem), pairs, templates


def read_lre(root: Path) -> PairSet:
    """Hernandez et al.'s relations: one JSON file, or a folder of them (recursive)."""
    relations: dict[str, list[Pair]] = {}
    templates: dict[str, tuple[str, ...]] = {}
    for f in _files(root, ".json", recursive=True):
        name, pairs, temps = _lre_relation(f)
        relations.setdefault(name, []).extend(pairs)
        templates[name] = tuple(dict.fromkeys(templates.get(name, ()) + temps))
    return _pair_set(root, "lre", relations, templates={r: t for r, t in templates.items() if t})


def _context_rows(file: Path) -> tuple[list[Pair], dict[Pair, Contexts]]:
    pairs: list[Pair] = []
    contexts: dict[Pair, Contexts] = {}
    for number, line in _lines(file):
        try:
            row = json.loads(line)
            w0, w1, c0, c1 = row["word0"], row["word1"], row["contexts0"], row["contexts1"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConvergentError(f"{file}:{number}: expected a JSON object with keys word0, "
                                  "word1, contexts0, contexts1") from None
        texts = [c0, c1]
        if not (isinstance(w0, str) and w0 and isinstance(w1, str) and w1
                and all(isinstance(c, list) and all(isinstance(x, str) for x in c)
                        for c in texts)):
            raise ConvergentError(f"{file}:{number}: word0/word1 must be words and "
                                  "contexts0/contexts1 lists of texts")
        pairs.append((w0, w1))
        contexts.setdefault((w0, w1), (tuple(c0), tuple(c1)))
    return pairs, contexts


def read_contexts(root: Path) -> PairSet:
    """Park's paired contexts: JSONL files, relation = file name (e.g. ``fr-de``)."""
    relations: dict[str, list[Pair]] = {}
    contexts: dict[str, dict[Pair, Contexts]] = {}
    for f in _files(root, ".jsonl", recursive=False):
        pairs, ctx = _context_rows(f)
        relations[f.stem] = pairs
        contexts[f.stem] = ctx
    return _pair_set(root, "contexts", relations, contexts=contexts)


_READERS: dict[str, Callable[[Path], PairSet]] = {
    "tsv": read_tsv, "park": read_park, "bats": read_bats, "lre": read_lre,
    "contexts": read_contexts,
}
