"""Atomic file writes: a file is replaced only when its new content is complete (run dirs, data, configs); and
`check_output_path`, the one up-front check of an output path that commands run before any work."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memrl.errors import MemrlError


class OutputPathError(MemrlError, ValueError):
    """An output path a command cannot (or must not) write to; the message names it (exit code 2)."""

    exit_code = 2


def check_output_path(path: str | os.PathLike, what: str = "--out", *, directory: bool = True,
                      owned: Callable[[Path], bool] | None = None, owner: str = "this command's output") -> Path:
    """Refuse, before any work starts, an output path the command would fail on at the end or would clobber:

    - a regular file where a directory is wanted (`directory=True`), or a directory where a file is wanted;
    - a path under a regular file (`afile/x.md`: mkdir would raise FileExistsError / NotADirectoryError);
    - a non-empty directory that `owned(dir)` does not recognise as `owner` (checked only when `owned` is
      given; the message lists what the directory holds);
    - a place this process cannot create files in (read-only filesystem, no permission): probed by creating and
      removing a temporary file in the nearest existing directory.

    Creates nothing and leaves nothing behind. Returns the path (user-expanded)."""
    p = Path(path).expanduser()
    if p.exists():
        if directory and not p.is_dir():
            raise OutputPathError(f"{what} {path}: is a file, not a directory")
        if not directory and p.is_dir():
            raise OutputPathError(f"{what} {path}: is a directory; give a file name")
    nearest = p if p.is_dir() else p.parent
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    if nearest.exists() and not nearest.is_dir():
        raise OutputPathError(f"{what} {path}: {nearest} is a file, so nothing can be created under it")
    if directory and owned is not None and p.is_dir():
        entries = sorted(e.name + ("/" if e.is_dir() else "") for e in p.iterdir())
        if entries and not owned(p):
            listing = ", ".join(entries[:5]) + (f", ... ({len(entries)} entries)" if len(entries) > 5 else "")
            raise OutputPathError(f"{what} {path}: a non-empty directory that is not {owner} (it holds {listing}); "
                                  "choose a new or empty directory")
    try:
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as e:
        raise OutputPathError(f"{what} {path}: cannot write in {nearest} ({e.strerror or type(e).__name__})") from None
    return p


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w"):
    """Open a temporary file next to `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the result normal permissions
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=False)
        f.write("\n")
