"""Process-level settings that make CPU runs fast.

glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and returns it with ``munmap`` when freed, so each large activation of a video VAE is
page-faulted in again, zero-filled by the kernel, on every layer of every step.  On the 2-core CPU
this project is developed on, that kernel time equalled the compute time: ``ivvae demo`` (17x256x256
with the bundled model, 2 threads) took 39.9 s wall with 33.5 s of system time, and 22.8 s with
2.3 s once the heap was allowed to keep and reuse freed memory (peak RSS 2.21 -> 2.27 GB).
:func:`tune_cpu_allocator` makes that change from inside the process; the ``ivvae`` command and
training call it, and library users may call it once at start-up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

# mallopt parameters (glibc <malloc.h>)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4

#: Environment variable that turns :func:`tune_cpu_allocator` off (``0``).
DISABLE_ENV = "IVVAE_TUNE_MALLOC"

_tuned = False


def tune_cpu_allocator(top_pad_bytes: int = 512 << 20) -> bool:
    """Let glibc keep freed memory for reuse instead of unmapping it (Linux/glibc only).

    Serves large blocks from the heap (``M_MMAP_MAX = 0``), never trims the heap back to the system
    (``M_TRIM_THRESHOLD``), and grows it ``top_pad_bytes`` at a time.  Peak memory is unchanged;
    memory freed by one step is reused by the next instead of being page-faulted in again.

    Returns ``True`` when the allocator was tuned (now or by an earlier call), ``False`` when this is
    not a glibc system or ``IVVAE_TUNE_MALLOC=0`` is set.  Safe to call more than once.
    """
    global _tuned
    if _tuned:
        return True
    if os.environ.get(DISABLE_ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_MAX, 0),
        (_M_TRIM_THRESHOLD, 2**31 - 1),
        (_M_TOP_PAD, min(int(top_pad_bytes), 2**31 - 1)),
    ))
    if not ok:
        logger.debug("mallopt refused a setting; the allocator is partly tuned")
    _tuned = ok
    return ok
