"""One trainer per checkpoint folder.

A Snakemake that is killed leaves its running jobs behind; rerunning at once would start a
second trainer that resumes from, and overwrites, the same checkpoint as the orphan. Each
trainer holds an exclusive `flock` on `<work_dir>/trainer.lock` for its whole run. The kernel
drops the lock when the holder exits or dies (even by SIGKILL), so a stale lock never blocks.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

LOCK_NAME = "trainer.lock"

P = ParamSpec("P")
R = TypeVar("R")


class FolderLockedError(RuntimeError):
    """Another live process trains into the same checkpoint folder."""


@contextlib.contextmanager
def exclusive(work_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the folder's trainer lock, or stop at once naming the folder and the holder's PID."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise FolderLockedError(
                f"{work_dir}: another trainer (PID {holder}) is using this checkpoint folder, "
                "probably a job left running by a Snakemake that was killed. Wait for it to "
                f"finish, or stop it (`kill {holder}`), then run the same command again."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def holds_work_dir(func: Callable[P, R]) -> Callable[P, R]:
    """Run a stage that trains under its `work_dir` keyword argument's lock."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with exclusive(kwargs["work_dir"]):  # type: ignore[arg-type]
            return func(*args, **kwargs)

    return wrapper
