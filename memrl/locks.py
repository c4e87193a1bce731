"""One memrl command per output directory at a time.

`memrl train` (output_dir), `memrl synth` (out=), `memrl eval` (out=) and `memrl demo` (out=) hold an advisory
lock on their directory for their whole life (`hold_directory`). A second command on the same directory is
refused at once with one line naming the holder's pid, instead of both running and mixing their files (two
trainings interleaving metrics.jsonl; two syntheses racing on the shard manifest).

The lock is `filelock`'s (flock on POSIX; released by the kernel if the holder dies) on a hidden file *beside*
the directory, `<parent>/.<name>.memrl.lock`, so that it survives the directory being replaced (`memrl train
overwrite=true` renames the old run aside). The holder's pid and command are in `<lock>.pid` while it runs.
Only the main process of a distributed launch (RANK 0) takes it. The same process may nest holds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from memrl.errors import MemrlError

_HELD: dict[str, int] = {}  # lock files this process holds -> nesting depth


class DirectoryBusyError(MemrlError, RuntimeError):
    """Another memrl command holds the output directory."""

    exit_code = 2


def lock_path(directory: str | os.PathLike) -> Path:
    d = Path(directory).expanduser().resolve()
    return d.parent / f".{d.name}.memrl.lock"


def _main_rank() -> bool:
    try:
        return int(os.environ.get("RANK", "0") or 0) == 0
    except ValueError:
        return True


def _holder(pid_file: Path) -> str:
    for _ in range(10):  # the holder writes its pid right after taking the lock
        try:
            text = pid_file.read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        if text:
            pid, _, command = text.partition(" ")
            return f"pid {pid}" + (f", {command}" if command else "")
        time.sleep(0.05)
    return "pid unknown"


@contextmanager
def hold_directory(directory: str | os.PathLike, command: str) -> Iterator[None]:
    """Hold `directory`'s lock for the block, or raise DirectoryBusyError naming the holder's pid."""
    if not _main_rank():
        yield
        return
    lock = lock_path(directory)
    key = str(lock)
    if key in _HELD:  # this process holds it already (a command that runs another one's code)
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    from filelock import FileLock, Timeout  # deferred: only commands that write a directory need it

    created = [p for p in (lock.parent, *lock.parent.parents) if not p.exists()]
    lock.parent.mkdir(parents=True, exist_ok=True)
    pid_file = lock.with_name(lock.name + ".pid")
    held = FileLock(str(lock), timeout=0)
    try:
        held.acquire()
    except Timeout:
        raise DirectoryBusyError(f"{directory} is in use by another memrl command ({_holder(pid_file)}); wait for it "
                                 f"to finish, or choose another directory") from None
    _HELD[key] = 1
    try:
        pid_file.write_text(f"{os.getpid()} {command}\n", encoding="utf-8")
        yield
    finally:
        del _HELD[key]
        try:
            pid_file.unlink()
        except OSError:
            pass
        held.release()
        for p in created:  # a command refused before it wrote anything leaves no directory behind
            try:
                p.rmdir()
            except OSError:
                break
