"""ivvae.runtime: the glibc allocator tuning used by the CLI and training."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ivvae import runtime

GLIBC = (
    sys.platform.startswith("linux")
    and subprocess.run(["ldd", "--version"], capture_output=True, text=True).stdout.lower().count("glibc") > 0
)


def _run(code: str, **env: str) -> str:
    import os

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, **env}).stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="mallopt tuning is glibc-only")
def test_tuned_allocator_reuses_freed_memory_instead_of_faulting_it_in():
    # Five forward passes of a small conv stack on a 9x128x128 clip (activations of 9.4 MiB each,
    # above glibc's mmap threshold). Untuned, every activation is a fresh mmap whose pages fault in
    # again (measured 1.28M minor faults); tuned, the heap keeps and reuses them (62k).
    code = """
import resource, sys, torch
from ivvae import runtime
if sys.argv[-1] == 'tune':
    assert runtime.tune_cpu_allocator() and runtime.tune_cpu_allocator()  # idempotent
torch.set_num_threads(1)
x = torch.ones(1, 16, 9, 128, 128)
conv = torch.nn.Conv3d(16, 16, 3, padding=1)
def forward():
    with torch.no_grad():
        y = x
        for _ in range(4):
            y = torch.nn.functional.silu(conv(y))
forward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    forward()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    faults = {mode: int(subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True).stdout)
              for mode in ("plain", "tune")}
    assert faults["tune"] < faults["plain"] / 5, faults


def test_disabled_by_environment():
    assert _run("from ivvae import runtime; print(runtime.tune_cpu_allocator())", IVVAE_TUNE_MALLOC="0") == "False"
    assert runtime.DISABLE_ENV == "IVVAE_TUNE_MALLOC"
