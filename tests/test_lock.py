"""The one lock: a second holder is refused, in this process or another, until the first lets go
or dies."""

import signal
import subprocess
import sys

from gpttui.fs import lock


def test_a_second_holder_is_refused_until_the_first_releases(tmp_path):
    path = tmp_path / "engine.lock"
    first, second = lock.FileLock(path), lock.FileLock(path)
    assert not lock.is_held(path)
    assert first.acquire()
    assert lock.is_held(path)
    assert not second.acquire()
    assert not second.acquire(wait=0.2)
    first.release()
    assert not lock.is_held(path)
    assert second.acquire()
    second.release()


def test_a_directory_can_be_locked(tmp_path):
    first, second = lock.FileLock(tmp_path), lock.FileLock(tmp_path)
    assert first.acquire() and not second.acquire()
    first.release()
    assert second.acquire()
    second.release()
    assert list(tmp_path.iterdir()) == []   # nothing created in it


def test_another_process_is_refused_and_a_killed_holder_leaves_no_lock(tmp_path):
    path = tmp_path / "engine.lock"
    code = ("import sys, time; from gpttui.fs import lock\n"
            "assert lock.FileLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock.is_held(path)
        assert not lock.FileLock(path).acquire(wait=0.1)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        mine = lock.FileLock(path)
        assert mine.acquire()   # the kernel dropped the dead holder's lock
        mine.release()
    finally:
        holder.kill()
        holder.wait()


def test_a_missing_file_is_not_held(tmp_path):
    assert not lock.is_held(tmp_path / "nothing-here")
