"""Memory of a web process: argon2's large buffers go back to the OS after each log-in."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc


def hand_big_buffers_back() -> None:
    """Fix glibc's mmap threshold at 128 KiB, as MALLOC_MMAP_THRESHOLD_=131072 would.

    glibc raises the threshold after the first large free (argon2's 19 MiB buffer), and from
    then on keeps such buffers in each thread's arena: 50 log-ins at once left a web process
    at 820 MB resident (bench_web). With the threshold fixed, every argon2 buffer is mmapped
    and handed back at free (measured 119 MB). No library exposes mallopt; ctypes does.
    Not glibc (musl, macOS): nothing to do.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        m_mmap_threshold = -3  # <malloc.h>
        mallopt(m_mmap_threshold, 128 * 1024)


def freeze_startup_objects() -> None:
    """Move everything built at start (modules, SQLAlchemy mappers, templates) out of the
    garbage collector's reach: a full collection then walks only what requests made, instead
    of stalling every request in flight while it walks ~100 MB of objects that never die."""
    gc.collect()
    gc.freeze()
