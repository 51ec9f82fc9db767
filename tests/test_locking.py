"""One writer per output folder: refusal, release on exit and on death, orphaned workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from convergent.errors import ConvergentError
from convergent.locking import folder_lock, worker_lock

HOLD = """
import sys, time
from convergent.locking import {which}
with {which}(sys.argv[1]{extra}):
    print("held", flush=True)
    time.sleep(60)
"""


def holder(folder, which="folder_lock", extra=", what='convergent numbers'"):
    process = subprocess.Popen([sys.executable, "-c", HOLD.format(which=which, extra=extra),
                                str(folder)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_writer_is_refused_in_one_line_naming_the_first(tmp_path):
    with folder_lock(tmp_path / "out", what="convergent run"), \
            pytest.raises(ConvergentError) as err, folder_lock(tmp_path / "out"):
        pass
    message = str(err.value)
    assert "\n" not in message
    assert f"convergent run (pid {os.getpid()}) is writing to this folder" in message
    with folder_lock(tmp_path / "out"):  # released when the block ends
        pass


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path):
    process = holder(tmp_path)
    with pytest.raises(ConvergentError, match="convergent numbers"), folder_lock(tmp_path):
        pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    with folder_lock(tmp_path, orphan_wait=0):
        pass


def test_a_new_holder_waits_for_workers_and_refuses_while_they_run(tmp_path):
    worker = holder(tmp_path, "worker_lock", "")
    try:
        with pytest.raises(ConvergentError, match="worker processes of an earlier run"), \
                folder_lock(tmp_path, orphan_wait=0.3):
            pass
    finally:
        worker.kill()
        worker.wait()
    started = time.monotonic()
    with folder_lock(tmp_path, orphan_wait=5), worker_lock(tmp_path):  # its own workers
        pass
    assert time.monotonic() - started < 5


def test_a_file_or_unwritable_folder_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConvergentError, match="not a folder"), folder_lock(tmp_path / "f"):
        pass
    if os.geteuid() == 0:
        return  # root writes anywhere
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ConvergentError, match="cannot write"), folder_lock(locked):
            pass
    finally:
        locked.chmod(0o700)


def test_a_folder_made_for_the_lock_alone_is_removed_again(tmp_path):
    with pytest.raises(RuntimeError), folder_lock(tmp_path / "new"):
        raise RuntimeError("the verb failed before writing anything")
    assert not (tmp_path / "new").exists()
    with folder_lock(tmp_path / "kept") as folder:
        (folder / "result.json").write_text("{}")
    assert (tmp_path / "kept" / "result.json").is_file()
