"""Helpers for tests that run the ``ivvae`` command line in-process."""

from __future__ import annotations

import torch

from ivvae import cli
from ivvae.io import write_video


def run(capsys, *argv) -> tuple[int, str, str]:
    """``ivvae ARGV`` in-process: (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    """The error message: exactly one line (progress bars aside), no traceback."""
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def write_sine_video(path, frames: int, height: int, width: int):
    """A moving colour sine pattern as an MP4 at 25 fps; returns ``path``."""
    t = torch.arange(frames).view(frames, 1, 1, 1)
    y = torch.arange(height).view(1, height, 1, 1)
    x = torch.arange(width).view(1, 1, width, 1)
    c = torch.arange(3).view(1, 1, 1, 3)
    write_video(path, (127 + 100 * torch.sin(0.3 * x + 0.2 * y + 0.5 * t + c)).to(torch.uint8), 25)
    return path
