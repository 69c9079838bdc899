"""Local sources before they reach a decoder: only regular files and folders get through.

A named pipe (FIFO) blocks whoever opens it until something writes into it, and /dev/zero or
/dev/urandom never end; handed to FFmpeg, each held a camera thread in the kernel for good.
So a path is checked twice: `special_file_problem` (a stat, for config files, the CLI and the
API, which have no file to open yet) and `open_regular` (the check the decoder relies on: it
opens without blocking and checks what it opened, so a file swapped for a FIFO between the
first check and the open is still refused). Standard library only: config.py imports it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from clipwatch.errors import SourceError

MAX_FRAME_FILE_BYTES = 256 * 1024 * 1024  # an image file larger than this is not a frame
_PROC_FD = Path("/proc/self/fd")


def _kind(mode: int) -> str | None:
    """What a non-regular, non-folder file is, in words; None for files and folders."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def special_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why `path` can never be a source (it is a FIFO, a device, a socket), or None: a
    regular file, a folder, or nothing there yet (a camera may name a file still to come).
    Follows symbolic links, as opening it would."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    kind = _kind(mode)
    return None if kind is None else \
        f"{path} is {kind}, not a video file or a folder of frames"


def open_regular(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor of `path`, which must be a regular file (SourceError
    otherwise). Opened without blocking (a FIFO would block the open itself) and checked
    through the descriptor, so what is checked is what is read."""
    problem = special_file_problem(path)  # refused before any open: opening some devices acts
    if problem:
        raise SourceError(problem)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise SourceError(f"{path} does not exist") from None
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else _kind(mode)
        raise SourceError(f"{path} is {kind}, not a video file")
    return fd


def decoder_path(fd: int, path: str | os.PathLike[str]) -> str:
    """The name to hand a decoder for the file open as `fd`: /proc/self/fd/N where there is
    one (it reopens exactly the file checked, whatever happens to `path` meanwhile), else the
    path itself."""
    return str(_PROC_FD / str(fd)) if _PROC_FD.is_dir() else str(path)


def read_regular(path: str | os.PathLike[str], limit: int = MAX_FRAME_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (an image frame)."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise SourceError(f"{path} is {size / 2**20:.0f} MiB, too large for a frame")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(size)  # (read(limit) would allocate the whole limit first)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
