"""Helpers for tests that run the ``ivvae`` command line in-process."""

from __future__ import annotations

from ivvae import cli


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
