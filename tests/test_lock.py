"""The one lock: a second holder is refused, in this process or another, until the first lets go
or dies."""

import os
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


def test_a_lock_handed_to_a_child_is_never_free_and_stays_with_the_child(tmp_path):
    path = tmp_path / "engine.lock"
    code = ("import os, sys, time; from gpttui.fs import lock\n"
            "mine = lock.FileLock(sys.argv[1])\n"
            "assert mine.acquire() and lock.HANDED_FD not in os.environ and not os.get_inheritable(mine.fd)\n"
            "print('took it', flush=True); sys.stdin.readline()\n")
    parent = lock.FileLock(path)
    assert parent.acquire()
    env = dict(os.environ)
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, pass_fds=parent.handed_to_child(env))
    try:
        parent.release()
        assert lock.is_held(path)  # the child's inherited descriptor holds it from the start
        assert child.stdout.readline().strip() == "took it"
        assert not lock.FileLock(path).acquire(wait=0.1)
        child.communicate("\n", timeout=10)
        assert child.returncode == 0
        assert not lock.is_held(path)
    finally:
        child.kill()
        child.wait()


def test_a_handed_descriptor_of_another_file_is_not_taken(tmp_path, monkeypatch):
    other = lock.FileLock(tmp_path / "other.lock")
    assert other.acquire()
    monkeypatch.setenv(lock.HANDED_FD, str(other.fd))
    mine = lock.FileLock(tmp_path / "engine.lock")
    assert mine.acquire() and mine.fd != other.fd
    mine.release()
    other.release()
