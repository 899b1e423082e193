"""What every command handler shares: which errors are the user's to fix, how they are reported
(one line on stderr, exit code 2, ``--debug`` for the traceback), and the checks a command makes
before it starts any work."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._files import file_ancestor

EXIT_USAGE = 2  # user-fixable errors, as argparse uses for bad arguments
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, a job scheduler), raised like Ctrl-C so that outputs in progress are
    removed on the way out instead of left as temporary files."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Within the block SIGTERM unwinds the stack (unless the program installed its own handler,
    as ``ivvae train`` does to stop after its step with a checkpoint)."""
    previous = signal.getsignal(signal.SIGTERM)
    installed = False
    if previous is signal.SIG_DFL:
        try:
            signal.signal(signal.SIGTERM, _raise_terminated)
            installed = True
        except ValueError:  # not the main thread: signals cannot be handled here
            pass
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous)


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix (covers VideoReadError, CheckpointError, FileExistsError, ...)."""
    import torch

    errors: list[type[BaseException]] = [OSError, ValueError, MemoryError]
    if hasattr(torch, "OutOfMemoryError"):
        errors.append(torch.OutOfMemoryError)
    return tuple(errors)


def _memory_advice(args: Any) -> str:
    """What to try after running out of memory: the options of this command that cut memory."""
    options = [flag for flag, attr in (("--chunk-groups 1", "chunk_groups"), ("--tile 256", "tile")) if hasattr(args, attr)]
    if options:
        return f"try {' and/or '.join(options)}, or fewer frames"
    return "try smaller sizes, or a machine with more memory"


def one_line(error: BaseException, limit: int = 600, memory_advice: str = "try --chunk-groups 1 and/or --tile 256, or fewer frames") -> str:
    """The error as one line; multi-line messages (a checkpoint's layout report) keep a short piece of each line."""
    lines = [" ".join(line.split()) for line in str(error).splitlines() if line.strip()]
    lines = lines[:1] + [line if len(line) <= 160 else line[:160] + "..." for line in lines[1:]]
    # a heading line ("... does not match the expected layout:") runs into its first item; later items are separated
    text = "".join(line if i == 0 else (" " if lines[i - 1].endswith(":") else " | ") + line for i, line in enumerate(lines))
    text = text or type(error).__name__
    if isinstance(error, MemoryError) or "OutOfMemory" in type(error).__name__:
        text = f"out of memory ({text}); {memory_advice}"
    if len(text) > limit:
        text = text[:limit] + " ... (run with --debug for the full message)"
    return text


def run_handler(prog: str, handler: Callable[[Any], int | None], args: Any) -> int:
    """Run a command handler; user-fixable errors become one line on stderr and exit code 2."""
    try:
        with _sigterm_unwinds():
            return int(handler(args) or 0)
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, Terminated)
        print(f"{prog}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except BrokenPipeError:  # `ivvae info | head`: the reader left; stop quietly (Python docs' recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except user_errors() as error:
        if getattr(args, "debug", False):
            raise
        print(f"{prog}: error: {one_line(error, memory_advice=_memory_advice(args))}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as error:
        # CPU allocation failures surface as RuntimeError("... can't allocate memory ...").
        if getattr(args, "debug", False) or "allocate" not in str(error):
            raise
        print(f"{prog}: error: {one_line(MemoryError(str(error).splitlines()[0]), memory_advice=_memory_advice(args))}", file=sys.stderr)
        return EXIT_USAGE


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def refuse_existing(paths: Iterable[Path], overwrite: bool, inputs: Iterable[Path] = ()) -> None:
    """Check output files before any work: never an input (not even with ``--overwrite``), not
    under a file, not a folder, and replaced only with ``--overwrite``."""
    inputs = [Path(p) for p in inputs]
    for path in map(Path, paths):
        for source in inputs:
            if _same_file(path, source):
                raise ValueError(f"output '{path}' is the input '{source}'; choose another output path")
        blocker = file_ancestor(path)
        if blocker is not None:
            raise NotADirectoryError(f"cannot write '{path}': '{blocker}' is a file, not a folder; choose another path")
        if path.is_dir():
            raise IsADirectoryError(f"output '{path}' is a folder; give a file path")
        if path.exists() and not overwrite:
            raise FileExistsError(f"output '{path}' exists; pass --overwrite to replace it")
        _check_writable(path)


def _check_writable(path: Path) -> None:
    """Create (and at once remove) a file in the nearest existing folder of ``path`` now, so that a folder we may not write
    into fails before minutes of encoding rather than after (permissions alone do not tell: root,
    read-only mounts, /proc)."""
    import tempfile

    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("."))
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise PermissionError(f"cannot write in '{path.parent}': no file can be created in '{folder}' "
                              f"({error.strerror or error}); choose another output path") from None


def check_output_folder(folder: Path) -> None:
    """An output folder must be a folder or creatable: not a file, not under a file."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"output folder '{folder}' is a file; choose another path")
    blocker = file_ancestor(folder)
    if blocker is not None:
        raise NotADirectoryError(f"cannot create '{folder}': '{blocker}' is a file, not a folder; choose another path")
    _check_writable(folder / "_")  # a file in the folder (or in its nearest existing parent)


def resolve_device(name: str) -> str:
    """``auto`` -> cuda when available, else cpu; an unknown device or an unavailable one is an error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {name}: not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0 .. "
                         f"cuda:{torch.cuda.device_count() - 1})")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name}: only cpu and cuda devices are supported")
    return name


def check_data_sources(sources: Sequence[str], option: str = "--data") -> None:
    """Each data source must exist: a typo is an error, not a video silently left out."""
    from ..io import resolve_source

    for source in sources:
        if not Path(resolve_source(source)).exists():
            raise FileNotFoundError(f"{option} {source}: not found (give a folder, a manifest, a video file or sample:NAME)")


def refuse_writing_over_model(target: Path, source: str | Path, label: str) -> None:
    """A model folder written into, inside or around the folder it is made from would destroy its source,
    even with --overwrite."""
    from ..hub import resolve_model_path

    folder = resolve_model_path(source).resolve()
    resolved = target.expanduser().resolve()
    if resolved == folder or folder in resolved.parents or resolved in folder.parents:
        raise ValueError(f"{label} '{target}' would write over the input model folder '{folder}'; choose a path outside it")


def describe_loaded(model) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{getattr(model, 'name_or_path', '?')} ({type(model).__name__}, {n / 1e6:.1f}M parameters)"


def count_text(count: int, word: str) -> str:
    """``1 frame``, ``2 frames``: a count with its noun in the right number."""
    return f"{count} {word}{'' if count == 1 else 's'}"
