"""Helpers for tests that signal a command's whole process group, as `timeout` does."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence


def terminate_group_when(cmd: Sequence[str], ready: Callable[[], bool], *, start_timeout_s: float = 180,
                         **popen_kwargs) -> tuple[int, str, str]:
    """Start ``cmd`` in a process group of its own, SIGTERM the whole group once ``ready()``, and
    return ``(exit code, stdout, stderr)``; fails if the command ends first or never gets ready."""
    proc = subprocess.Popen(list(cmd), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen_kwargs)
    try:
        deadline = time.monotonic() + start_timeout_s
        while not ready():
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"{cmd[0]} ended (exit {proc.returncode}) before it was ready:\n{out}\n{err}")
            assert time.monotonic() < deadline, f"{cmd[0]} not ready after {start_timeout_s} s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out, err
