"""What every command handler shares: which errors are the user's to fix, how they are reported
(one line on stderr, exit code 2, ``--debug`` for the traceback), and the checks a command makes
before it starts any work."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

EXIT_USAGE = 2  # user-fixable errors, as argparse uses for bad arguments
EXIT_INTERRUPTED = 130


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix (covers VideoReadError, CheckpointError, FileExistsError, ...)."""
    import torch

    errors: list[type[BaseException]] = [OSError, ValueError, MemoryError]
    if hasattr(torch, "OutOfMemoryError"):
        errors.append(torch.OutOfMemoryError)
    return tuple(errors)


def one_line(error: BaseException, limit: int = 600) -> str:
    """The error as one line; multi-line messages (a checkpoint's layout report) keep a short piece of each line."""
    lines = [" ".join(line.split()) for line in str(error).splitlines() if line.strip()]
    lines = lines[:1] + [line if len(line) <= 160 else line[:160] + "..." for line in lines[1:]]
    text = " | ".join(lines) or type(error).__name__
    if isinstance(error, MemoryError) or "OutOfMemory" in type(error).__name__:
        text = f"out of memory ({text}); try --chunk-groups 1 and/or --tile 256, or fewer frames"
    if len(text) > limit:
        text = text[:limit] + " ... (run with --debug for the full message)"
    return text


def run_handler(prog: str, handler: Callable[[Any], int | None], args: Any) -> int:
    """Run a command handler; user-fixable errors become one line on stderr and exit code 2."""
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except user_errors() as error:
        if getattr(args, "debug", False):
            raise
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as error:
        # CPU allocation failures surface as RuntimeError("... can't allocate memory ...").
        if getattr(args, "debug", False) or "allocate" not in str(error):
            raise
        print(f"{prog}: error: {one_line(MemoryError(str(error).splitlines()[0]))}", file=sys.stderr)
        return EXIT_USAGE


def refuse_existing(paths: Iterable[Path], overwrite: bool) -> None:
    """Never replace an output silently: raise unless ``--overwrite``."""
    if overwrite:
        return
    for path in paths:
        if path.exists():
            raise FileExistsError(f"output '{path}' exists; pass --overwrite to replace it")


def resolve_device(name: str) -> str:
    """``auto`` -> cuda when available, else cpu; a CUDA device on a machine without CUDA is an error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return name


def check_data_sources(sources: Sequence[str], option: str = "--data") -> None:
    """Each data source must exist: a typo is an error, not a video silently left out."""
    from .io import resolve_source

    for source in sources:
        if not Path(resolve_source(source)).exists():
            raise FileNotFoundError(f"{option} {source}: not found (give a folder, a manifest, a video file or sample:NAME)")
