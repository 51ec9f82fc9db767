"""Every verb under hostile input: exit 2, one line on stderr, nothing new on disk.

One table of cases (missing, empty, garbage, NaN, wrong shape, a file or a read-only
folder as ``--out``, bad sites, bad ranges, negative counts, a second writer...) is walked
in-process. Each case snapshots its whole workspace (every file's path, size and content
hash) before and after, so a failure that leaves a file anywhere (in ``--out``, beside it,
or a lock file) fails the case. ``benchmarks/hostile_inputs.py`` runs this file and writes
``docs/hostile-inputs.md`` from the outcomes (``CONVERGENT_HOSTILE_REPORT``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from test_experiments_fixtures import make_corpus, periodic_matrix, write_spec

from convergent.cli import main
from convergent.locking import LOCK, WORKERS, folder_lock


@dataclass(frozen=True)
class Case:
    verb: str
    what: str
    argv: Callable[[Path], list[str]]
    model: bool = False  # needs the tiny Hugging Face model in the workspace
    known: str = ""  # a known failure, in a file this table's author does not own
    disk_full: bool = False  # every fsync fails with ENOSPC, as on a full disk


def _w(root: Path, name: str) -> str:
    return str(root / name)


CASES = [
    # numbers
    Case("numbers", "missing matrix file",
         lambda w: ["numbers", f"matrix:{w / 'nope.npy'}", "--out", _w(w, "out")]),
    Case("numbers", "empty .npy file",
         lambda w: ["numbers", f"matrix:{w / 'empty.npy'}", "--out", _w(w, "out")]),
    Case("numbers", "empty .csv file",
         lambda w: ["numbers", f"matrix:{w / 'empty.csv'}", "--out", _w(w, "out")]),
    Case("numbers", "garbage .npy (not NumPy)",
         lambda w: ["numbers", f"matrix:{w / 'garbage.npy'}", "--out", _w(w, "out")]),
    Case("numbers", "ragged .csv rows",
         lambda w: ["numbers", f"matrix:{w / 'ragged.csv'}", "--out", _w(w, "out")]),
    Case("numbers", "NaN in the matrix",
         lambda w: ["numbers", f"matrix:{w / 'nan.npy'}", "--out", _w(w, "out")]),
    Case("numbers", "wrong shape (1-D array)",
         lambda w: ["numbers", f"matrix:{w / 'flat.npy'}", "--out", _w(w, "out")]),
    Case("numbers", "empty word-vector file",
         lambda w: ["numbers", _w(w, "empty.txt"), "--out", _w(w, "out")]),
    Case("numbers", "ragged word-vector file",
         lambda w: ["numbers", _w(w, "ragged.txt"), "--out", _w(w, "out")]),
    Case("numbers", "a file as --out",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--out", _w(w, "afile")]),
    Case("numbers", "a read-only --out",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--out", _w(w, "readonly")]),
    Case("numbers", "--out inside a read-only folder",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--out", _w(w, "readonly/new")]),
    Case("numbers", "disk full while writing",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--permutations", "0", "--out",
                    _w(w, "out")], disk_full=True),
    Case("numbers", "another writer holds --out",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--out", _w(w, "locked"),
                    "--permutations", "0"]),
    Case("numbers", "bad site name (before the model loads)",
         lambda w: ["numbers", _w(w, "model"), "--site", "bogus", "--out", _w(w, "out")],
         model=True),
    Case("numbers", "negative layer site",
         lambda w: ["numbers", _w(w, "model"), "--site", "layer:-1", "--out", _w(w, "out")],
         model=True),
    Case("numbers", "layer beyond the model",
         lambda w: ["numbers", _w(w, "model"), "--site", "layer:99", "--numbers", "0:20",
                    "--out", _w(w, "out")], model=True),
    Case("numbers", "empty range 5:2",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--numbers", "5:2", "--out",
                    _w(w, "out")]),
    Case("numbers", "negative range -5:20 (numbers missing)",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--numbers", "-5:20", "--out",
                    _w(w, "out")]),
    Case("numbers", "range that is not A:B",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--numbers", "abc", "--out",
                    _w(w, "out")]),
    Case("numbers", "--permutations=-5",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--permutations=-5", "--out",
                    _w(w, "out")]),
    Case("numbers", "--folds 0",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--folds", "0", "--out",
                    _w(w, "out")]),
    Case("numbers", "--moduli 0:5",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--moduli", "0:5", "--out",
                    _w(w, "out")]),
    Case("numbers", "--labels with the wrong count",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--labels", "0:7", "--out",
                    _w(w, "out")]),
    Case("numbers", "garbage --labels file",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--labels", _w(w, "garbage.npy"),
                    "--out", _w(w, "out")]),
    Case("numbers", "empty --labels file",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--labels", _w(w, "empty.txt"),
                    "--out", _w(w, "out")]),
    Case("numbers", "--dynamics on a matrix",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--dynamics", "--out",
                    _w(w, "out")]),
    Case("numbers", "unknown source",
         lambda w: ["numbers", "no-such-model-anywhere", "--out", _w(w, "out")]),
    Case("numbers", "--out on a read-only file system",
         lambda w: ["numbers", f"matrix:{w / 'ok.npy'}", "--out", f"{READ_ONLY_FS}/out"]),
    # theory
    Case("theory", "another writer holds --out",
         lambda w: ["theory", "--n", "50", "--out", _w(w, "locked")]),
    Case("theory", "--out on a read-only file system",
         lambda w: ["theory", "--out", f"{READ_ONLY_FS}/out"]),
    Case("theory", "--period 1", lambda w: ["theory", "--period", "1", "--out", _w(w, "out")]),
    Case("theory", "--n 0", lambda w: ["theory", "--n", "0", "--out", _w(w, "out")]),
    Case("theory", "--noise -1", lambda w: ["theory", "--noise=-1", "--out", _w(w, "out")]),
    Case("theory", "--dim abc", lambda w: ["theory", "--dim", "abc", "--out", _w(w, "out")]),
    Case("theory", "a file as --out", lambda w: ["theory", "--out", _w(w, "afile")]),
    Case("theory", "a read-only --out", lambda w: ["theory", "--out", _w(w, "readonly")]),
    Case("theory", "disk full while writing", lambda w: ["theory", "--out", _w(w, "out")],
         disk_full=True),
    Case("theory", "disk full, an existing --out",
         lambda w: ["theory", "--out", _w(w, "existing")], disk_full=True),
    # train
    Case("train", "--threads 0",
         lambda w: ["train", "--arch", "transformer", "--threads", "0", "--out", _w(w, "out")]),
    Case("train", "--tokens -5",
         lambda w: ["train", "--arch", "transformer", "--tokens=-5", "--out", _w(w, "out")]),
    Case("train", "missing corpus file",
         lambda w: ["train", "--arch", "word2vec", "--corpus", _w(w, "nope.txt"), "--out",
                    _w(w, "out")]),
    Case("train", "empty corpus file",
         lambda w: ["train", "--arch", "word2vec", "--corpus", _w(w, "empty.txt"), "--out",
                    _w(w, "out")]),
    Case("train", "a file as --out",
         lambda w: ["train", "--arch", "word2vec", "--corpus", _w(w, "corpus.jsonl"),
                    "--out", _w(w, "afile")]),
    Case("train", "a read-only --out",
         lambda w: ["train", "--arch", "word2vec", "--corpus", _w(w, "corpus.jsonl"),
                    "--out", _w(w, "readonly")]),
    Case("train", "another writer holds --out",
         lambda w: ["train", "--arch", "word2vec", "--corpus", _w(w, "corpus.jsonl"),
                    "--out", _w(w, "locked")]),
    Case("train", "--out on a read-only file system",
         lambda w: ["train", "--arch", "word2vec", "--corpus", _w(w, "corpus.jsonl"),
                    "--out", f"{READ_ONLY_FS}/out"]),
    Case("train", "unknown config field",
         lambda w: ["train", "--arch", "transformer", "--set", "bogus=1", "--out",
                    _w(w, "out")]),
    Case("train", "garbage --config",
         lambda w: ["train", "--arch", "transformer", "--config", _w(w, "garbage.npy"),
                    "--out", _w(w, "out")]),
    # extract
    Case("extract", "bad site name (before the model loads)",
         lambda w: ["extract", _w(w, "model"), "--site", "bogus", "--numbers", "0:10",
                    "--out", _w(w, "out")], model=True),
    Case("extract", "empty range",
         lambda w: ["extract", _w(w, "model"), "--site", "embed", "--numbers", "3:3",
                    "--out", _w(w, "out")], model=True),
    Case("extract", "empty --words file",
         lambda w: ["extract", _w(w, "model"), "--site", "embed", "--words",
                    _w(w, "empty.txt"), "--out", _w(w, "out")], model=True),
    Case("extract", "a file as --out",
         lambda w: ["extract", _w(w, "model"), "--site", "embed", "--numbers", "0:10",
                    "--out", _w(w, "afile")], model=True),
    Case("extract", "--out on a read-only file system",
         lambda w: ["extract", _w(w, "model"), "--site", "embed", "--numbers", "0:10",
                    "--out", f"{READ_ONLY_FS}/out"], model=True),
    Case("extract", "--out holds other files",
         lambda w: ["extract", _w(w, "model"), "--site", "embed", "--numbers", "0:10",
                    "--out", _w(w, "existing")], model=True),
    Case("extract", "missing model",
         lambda w: ["extract", _w(w, "nope"), "--site", "embed", "--numbers", "0:10",
                    "--out", _w(w, "out")]),
    Case("extract", "--shard-size 0",
         lambda w: ["extract", _w(w, "model"), "--site", "embed", "--numbers", "0:10",
                    "--shard-size", "0", "--out", _w(w, "out")], model=True),
    # run / reproduce / results / report
    Case("run", "missing spec", lambda w: ["run", _w(w, "nope.toml"), "--out", _w(w, "out")]),
    Case("run", "garbage spec", lambda w: ["run", _w(w, "garbage.toml"), "--out",
                                           _w(w, "out")]),
    Case("run", "spec with an unresolvable source",
         lambda w: ["run", _w(w, "badsource.toml"), "--out", _w(w, "out")]),
    Case("run", "--workers 0", lambda w: ["run", _w(w, "good.toml"), "--workers", "0",
                                          "--no-progress", "--out", _w(w, "out")]),
    Case("run", "a file as --out", lambda w: ["run", _w(w, "good.toml"), "--backend",
                                              "serial", "--out", _w(w, "afile")]),
    Case("reproduce", "unknown experiment", lambda w: ["reproduce", "bogus"]),
    Case("reproduce", "--seeds 0",
         lambda w: ["reproduce", "addition", "--seeds", "0", "--out", _w(w, "out")]),
    Case("results", "missing folder", lambda w: ["results", _w(w, "nope")]),
    Case("results", "folder without results", lambda w: ["results", _w(w, "existing")]),
    Case("report", "missing folder", lambda w: ["report", _w(w, "nope")]),
    # linearity / identify
    Case("linearity", "missing pairs file",
         lambda w: ["linearity", _w(w, "vectors.txt"), "--pairs", _w(w, "nope.tsv"), "--out",
                    _w(w, "out")]),
    Case("linearity", "empty pairs file",
         lambda w: ["linearity", _w(w, "vectors.txt"), "--pairs", _w(w, "empty.tsv"),
                    "--out", _w(w, "out")]),
    Case("linearity", "--folds 1",
         lambda w: ["linearity", _w(w, "vectors.txt"), "--folds", "1", "--out", _w(w, "out")]),
    Case("linearity", "another writer holds --out",
         lambda w: ["linearity", _w(w, "vectors.txt"), "--pairs", _w(w, "pairs.tsv"),
                    "--min-pairs", "3", "--folds", "3", "--out", _w(w, "locked")]),
    Case("linearity", "--out on a read-only file system",
         lambda w: ["linearity", _w(w, "vectors.txt"), "--out", f"{READ_ONLY_FS}/out"]),
    Case("linearity", "a file as --out",
         lambda w: ["linearity", _w(w, "vectors.txt"), "--out", _w(w, "afile")]),
    Case("linearity", "missing source",
         lambda w: ["linearity", _w(w, "nope.txt"), "--out", _w(w, "out")]),
    Case("identify", "--samples 0",
         lambda w: ["identify", _w(w, "model"), "--samples", "0", "--out", _w(w, "out")]),
    Case("identify", "missing pairs file",
         lambda w: ["identify", _w(w, "model"), "--pairs", _w(w, "nope.tsv"), "--out",
                    _w(w, "out")]),
    Case("identify", "--condition 0.5",
         lambda w: ["identify", _w(w, "model"), "--condition", "0.5", "--out", _w(w, "out")]),
    Case("identify", "--out on a read-only file system",
         lambda w: ["identify", _w(w, "model"), "--out", f"{READ_ONLY_FS}/out"]),
    Case("identify", "a model folder without weights",
         lambda w: ["identify", _w(w, "existing"), "--out", _w(w, "out")]),
    Case("identify", "a file as --out",
         lambda w: ["identify", _w(w, "model"), "--out", _w(w, "afile")], model=True),
    # origins
    Case("origins", "--steps 0", lambda w: ["origins", "--steps", "0", "--out", _w(w, "out")]),
    Case("origins", "--reveal abc", lambda w: ["origins", "--reveal", "abc", "--no-compare-lm",
                                               "--out", _w(w, "out")]),
    Case("origins", "missing structure file",
         lambda w: ["origins", "--structure", _w(w, "nope.json"), "--no-compare-lm", "--out",
                    _w(w, "out")]),
    Case("origins", "--noise -0.1", lambda w: ["origins", "--noise=-0.1", "--out",
                                               _w(w, "out")]),
    Case("origins", "another writer holds --out",
         lambda w: ["origins", "--no-compare-lm", "--steps", "2", "--out", _w(w, "locked")]),
    Case("origins", "--out on a read-only file system",
         lambda w: ["origins", "--no-compare-lm", "--out", f"{READ_ONLY_FS}/out"]),
    Case("origins", "a file as --out",
         lambda w: ["origins", "--no-compare-lm", "--steps", "2", "--out", _w(w, "afile")]),
    # data
    Case("data", "no action", lambda w: ["data"]),
    Case("data", "missing corpus",
         lambda w: ["data", "prepare", "--corpus", _w(w, "nope.txt"), "--out", _w(w, "out")]),
    Case("data", "--workers 0",
         lambda w: ["data", "prepare", "--corpus", _w(w, "corpus.jsonl"), "--workers", "0",
                    "--out", _w(w, "out")]),
    Case("data", "--out on a read-only file system",
         lambda w: ["data", "prepare", "--corpus", _w(w, "corpus.jsonl"), "--vocab-size",
                    "300", "--workers", "1", "--out", f"{READ_ONLY_FS}/out"]),
    Case("data", "a file as --out",
         lambda w: ["data", "prepare", "--corpus", _w(w, "corpus.jsonl"), "--vocab-size",
                    "300", "--workers", "1", "--out", _w(w, "afile")]),
]

PROGRESS = re.compile(r"\d+/\d+ \[[\d:?]+<[\d:?]+")  # a tqdm bar: "30/30 [00:00<00:00"
READ_ONLY_USABLE = os.geteuid() != 0  # root writes into read-only folders anyway
READ_ONLY_FS = "/sys/convergent-hostile"  # sysfs: not even root may create a folder there
OUTCOMES: list[tuple[Case, str, str]] = []  # (case, held/failed/skipped, stderr line)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    from hf_fixtures import make_model

    return make_model("llama", tmp_path_factory.mktemp("hostile-model") / "model")


def _workspace(root: Path, model: Path | None) -> Path:
    """Inputs of every kind, good and bad, in one folder."""
    np.save(root / "ok.npy", np.random.default_rng(0).normal(size=(100, 6)))
    periodic_matrix(root / "nan.npy", nan=True)
    np.save(root / "flat.npy", np.zeros(10))
    (root / "empty.npy").write_bytes(b"")
    (root / "empty.csv").write_text("")
    (root / "empty.txt").write_text("")
    (root / "empty.tsv").write_text("")
    (root / "garbage.npy").write_bytes(b"this is not an array\n")
    (root / "garbage.toml").write_text("[experiment\nname = = 3\n")
    (root / "ragged.csv").write_text("1,2,3\n4,5,6\n7,8\n")
    (root / "ragged.txt").write_text("cat 1 2 3\ndog 4 5\n")
    words = ["king", "queen", "man", "woman", "boy", "girl", "paris", "france", "rome", "italy",
             "berlin", "germany"]
    rng = np.random.default_rng(1)
    (root / "vectors.txt").write_text(
        "".join(f"{w} " + " ".join(f"{v:.3f}" for v in rng.normal(size=4)) + "\n"
                for w in words))
    make_corpus(root / "corpus.jsonl", docs=4)
    (root / "pairs.tsv").write_text("".join(
        f"{a}\t{b}\t{r}\n" for a, b, r in [
            ("king", "queen", "gender"), ("man", "woman", "gender"), ("boy", "girl", "gender"),
            ("paris", "france", "capital"), ("rome", "italy", "capital"),
            ("berlin", "germany", "capital")]))
    write_spec(root / "badsource.toml", {
        "experiment": {"name": "bad"},
        "sources.m": {"spec": f"matrix:{root / 'nope.npy'}"},
        "analyses.a": {"sources": ["m"], "numbers": "0:10"}})
    write_spec(root / "good.toml", {
        "experiment": {"name": "good"},
        "sources.m": {"spec": f"matrix:{root / 'ok.npy'}"},
        "analyses.a": {"sources": ["m"], "numbers": "0:100", "permutations": 0}})
    (root / "afile").write_text("a file, not a folder\n")
    (root / "existing").mkdir()
    (root / "existing" / "kept.txt").write_text("user data\n")
    (root / "locked").mkdir()
    with folder_lock(root / "locked", what="a test"):
        pass  # its lock files exist before the snapshot
    (root / "readonly").mkdir()
    (root / "readonly" / "kept.txt").write_text("user data\n")
    (root / "readonly").chmod(stat.S_IRUSR | stat.S_IXUSR)
    if model is not None:
        os.symlink(model, root / "model")
    return root


def _can_create(folder: str) -> bool:
    try:
        os.mkdir(folder)
    except OSError:
        return False
    os.rmdir(folder)
    return True


def _no_space(fd: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its kind and content hash, except the lock files
    that ``folder_lock`` leaves in a folder that existed (removing them would race with
    their next user; they hold only the last holder's name)."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.name in (LOCK, WORKERS) and path.parent.name == "existing":
            continue
        if path.is_symlink():
            found[key] = "link"
        elif path.is_dir():
            found[key] = "dir"
        else:
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return found


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    target = os.environ.get("CONVERGENT_HOSTILE_REPORT")
    if target:
        Path(target).write_text(json.dumps(
            [{"verb": c.verb, "what": c.what, "outcome": o, "message": m}
             for c, o, m in OUTCOMES], indent=1))


@pytest.mark.parametrize("case", CASES, ids=[f"{c.verb}: {c.what}" for c in CASES])
def test_hostile_input(case, tmp_path, capsys, request, monkeypatch):
    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path / "cache"))
    if "read-only file system" in case.what:
        if _can_create(READ_ONLY_FS):
            OUTCOMES.append((case, "skipped (no read-only file system)", ""))
            pytest.skip("/sys is writable here")
    elif "read-only" in case.what and not READ_ONLY_USABLE:
        OUTCOMES.append((case, "skipped (running as root)", ""))
        pytest.skip("running as root: a read-only folder is writable")
    needs_model = case.model or "model" in " ".join(case.argv(tmp_path))
    model = request.getfixturevalue("model_folder") if needs_model else None
    root = tmp_path / "w"
    root.mkdir()
    _workspace(root, model)
    argv = case.argv(root)
    before = _snapshot(root)
    capsys.readouterr()  # the fixtures' own output
    if case.known:
        request.applymarker(pytest.mark.xfail(reason=case.known, strict=True))
    if case.disk_full:
        monkeypatch.setattr(os, "fsync", _no_space)
    try:
        if case.what == "another writer holds --out":
            with folder_lock(root / "locked", what="a test"):
                code = main(argv)
        else:
            code = main(argv)
    finally:
        (root / "readonly").chmod(stat.S_IRWXU)
    err = capsys.readouterr().err
    # progress bars (a model's weights loading) are not messages; everything else is
    lines = [line for line in err.replace("\r", "\n").splitlines()
             if line.strip() and not PROGRESS.search(line)]
    after = _snapshot(root)
    new = sorted(set(after) - set(before))
    changed = sorted(k for k in before if after.get(k) != before[k])
    held = code == 2 and len(lines) == 1 and not new and not changed
    OUTCOMES.append((case, "held" if held else "FAILED", lines[0] if lines else
                     (err.strip().splitlines() or [f"exit {code}, nothing on stderr"])[-1]))
    assert code == 2, err
    assert len(lines) == 1, err
    assert not new and not changed, (new, changed)


def test_numbers_defaults_to_a_matrix_labels(tmp_path, capsys):
    """Without --numbers, a matrix is analysed over its own labels (not 0..999)."""
    path = periodic_matrix(tmp_path / "m.npy", n=60, period=10)
    out = tmp_path / "out"
    assert main(["numbers", f"matrix:{path}", "--labels", "100:160", "--permutations", "0",
                 "--moduli", "2:6", "--out", str(out)]) == 0
    entry = json.loads((out / "results.json").read_text())["sources"][0]
    assert entry["numbers"][:2] == [100, 159]
    assert {p.name for p in out.iterdir()} >= {"numbers.png", "numbers.svg"}
    assert not (tmp_path / "out.partial").exists()


def test_origins_writes_the_svgs_it_promises(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["origins", "--no-compare-lm", "--no-progress", "--steps", "4",
                 "--checkpoints", "2", "--concepts", "2", "--dim", "4", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"evolution.svg", "cosines.svg", "evolution.png", "results.json"} <= names


def test_layer_all_shows_progress_over_sites(model_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONVERGENT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert main(["numbers", str(model_folder), "--site", "layer:all", "--numbers", "0:40",
                 "--permutations", "0", "--moduli", "2:4", "--folds", "2",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "sites:" in err and "| 0/3 [" in err  # a tqdm bar over the 3 layers
    assert {"layers.svg", "numbers.svg", "results.json"} <= {p.name for p in out.iterdir()}
