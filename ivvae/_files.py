"""File-system helpers shared by the readers and writers."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def path_list(value: Any, what: str, expected: str) -> list[str | os.PathLike]:
    """One path or an iterable of paths, as a list of them. Empty: ``ValueError``; anything that is
    not a path: ``TypeError`` ("``what`` must be ``expected``, got ...")."""
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if isinstance(value, bytes) or not isinstance(value, Iterable):
        raise TypeError(f"{what} must be {expected}, got {type(value).__name__}")
    paths = list(value)
    if not paths:
        raise ValueError(f"{what} is an empty list: give {expected}")
    wrong = [p for p in paths if not isinstance(p, (str, os.PathLike))]
    if wrong:
        raise TypeError(f"{what} entries must be paths (str or os.PathLike), got {type(wrong[0]).__name__} {wrong[0]!r}")
    return paths


def file_ancestor(path: str | os.PathLike) -> Path | None:
    """The nearest existing ancestor of ``path`` if it is a file: then ``path`` cannot be created."""
    for parent in Path(path).expanduser().absolute().parents:
        if parent.exists():
            return parent if not parent.is_dir() else None
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike) -> None:
    """Give a file we wrote (or every file in a folder we wrote) the mode the user's umask asks for.

    safetensors writes its files with mode 0600 whatever the umask, so latents, shards and model
    weights were private while the JSON next to them was not.
    """
    path = Path(path)
    mode = 0o666 & ~_umask()
    for file in ([path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]):
        os.chmod(file, mode)


def refuse_nonempty_folder(folder: str | os.PathLike, overwrite: bool) -> Path:
    """``folder`` as a Path; a ``FileExistsError`` if it exists and is not an empty folder (unless ``overwrite``)."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and not overwrite:
        raise FileExistsError(f"output folder '{folder}' exists and is not empty; choose another or pass --overwrite")
    return folder


# safetensors reports I/O failures as SafetensorError("... I/O error: No space left on device (os error 28)").
_SAFETENSORS_IO = re.compile(r"I/O error: (.+?) \(os error (\d+)\)")


def write_error(path: str | os.PathLike, error: BaseException) -> OSError | None:
    """``error`` as a one-line ``OSError`` of its own type naming ``path`` ("cannot write 'PATH': No space left
    on device"), or None when it is no I/O failure (a bug or a bad value, to be raised as it is)."""
    if isinstance(error, OSError):
        if str(error).startswith("cannot write '"):
            return error  # worded already (a nested write)
        kind, cause, code = type(error), error.strerror or " ".join(str(error).split()), error.errno
    elif type(error).__name__ == "SafetensorError" and (match := _SAFETENSORS_IO.search(str(error))):
        kind, cause, code = OSError, match[1], int(match[2])
    else:
        return None
    try:
        wrapped = kind(f"cannot write '{os.fspath(path)}': {cause}")
    except TypeError:  # an OSError subclass that takes other arguments
        wrapped = OSError(f"cannot write '{os.fspath(path)}': {cause}")
    wrapped.errno = code  # kept for callers that test it; str() stays the message (no strerror set)
    return wrapped


def write_atomically(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Make ``path`` by ``write(tmp)`` on a temporary file beside it, then rename that into place.

    A failed write (a full disk) leaves the old file or none, never a partial or empty one, and no
    temporary file; I/O errors become one-line ``OSError``s naming ``path`` (:func:`write_error`).
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        tmp = Path(name)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make the file private
        os.replace(tmp, path)
        tmp = None
    except Exception as error:
        wrapped = write_error(path, error)
        if wrapped is None:
            raise
        raise wrapped from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return path


def write_pretrained(model: Any, folder: str | os.PathLike, *, shown: str | os.PathLike | None = None) -> None:
    """``save_pretrained`` (safetensors) with the umask's file modes and no ``_name_or_path``.

    diffusers stores the folder a model was loaded from as ``_name_or_path`` in the config it saves:
    a local path of whoever wrote the folder, which ``from_pretrained`` replaces on loading anyway.
    A failed write removes ``folder`` if it did not exist before (a caller's temporary folder included);
    I/O errors name ``shown`` (default ``folder``; see :func:`write_error`).
    """
    folder = Path(folder)
    existed = folder.exists()
    try:
        model.save_pretrained(folder, safe_serialization=True)
        tidy_saved_model(folder)  # done by our models' save_pretrained already; any other diffusers model too
        honour_umask(folder)
    except BaseException as error:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        wrapped = write_error(folder if shown is None else shown, error) if isinstance(error, Exception) else None
        if wrapped is None:
            raise
        raise wrapped from None


#: Files a diffusers ``save_pretrained`` writes (and an earlier model in the same folder may have left).
WEIGHT_FILE_PATTERNS = ("diffusion_pytorch_model*.safetensors", "diffusion_pytorch_model*.bin", "diffusion_pytorch_model*.index.json")


def tidy_saved_model(folder: str | os.PathLike) -> None:
    """After diffusers' ``save_pretrained``: drop the writer's local ``_name_or_path`` from config.json
    and give the files it wrote the umask's modes (safetensors writes 0600)."""
    folder = Path(folder)
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    if config.pop("_name_or_path", None) is not None:
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")  # diffusers' own layout
    for path in [config_file, *(p for pattern in WEIGHT_FILE_PATTERNS for p in folder.glob(pattern))]:
        honour_umask(path)


def save_model_folder(model: Any, folder: Path, report_name: str | None = None, report: dict[str, Any] | None = None) -> None:
    """:func:`write_pretrained`, and a JSON report beside it, all or nothing.

    The files are written into a temporary folder and moved into ``folder`` once complete, so a failed
    write (a full disk) leaves no partial model, no new (empty) folder, and an existing folder's files as they were.
    """
    folder = Path(folder)
    created = _make_parents(folder)
    # Beside a new folder (renamed into place); inside an existing one, whose parent may not be ours to write.
    tmp = folder / f".tmp-{os.getpid()}" if folder.is_dir() else folder.with_name(f".tmp-{folder.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_pretrained(model, tmp, shown=folder)
        if report_name is not None:
            _reworded(folder / report_name, lambda: (tmp / report_name).write_text(json.dumps(report, indent=1)))
        _reworded(folder, lambda: _move_into(tmp, folder))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for parent in created:  # innermost first; only folders this call made, and only if still empty
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
        raise


def _other_models_files(folder: Path, keep: set[str]) -> list[Path]:
    """The model files in ``folder`` (weights, ``*_report.json``, ``latent_stats.json``) not named in ``keep``."""
    patterns = (*WEIGHT_FILE_PATTERNS, "*_report.json", "latent_stats.json")
    return [p for pattern in patterns for p in folder.glob(pattern) if p.is_file() and p.name not in keep]


def _reworded(path: Path, step: Callable[[], Any]) -> None:
    """Run ``step``; an I/O error names ``path`` (the final path, not the temporary one written)."""
    try:
        step()
    except OSError as error:
        raise write_error(path, error) from None


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder``'s missing parents; those created, innermost first (to remove them on failure)."""
    missing = [p for p in folder.absolute().parents if not p.exists()]
    folder.parent.mkdir(parents=True, exist_ok=True)
    return missing


def _move_into(tmp: Path, folder: Path) -> None:
    """Rename the complete ``tmp`` to ``folder``, or, made inside an existing ``folder``, move its files up
    one by one (replacing those of an overwritten model): renames need no disk space."""
    if tmp.parent != folder:
        os.rename(tmp, folder)
        return
    for stale in _other_models_files(folder, keep={item.name for item in tmp.iterdir()}):
        stale.unlink()  # an overwritten model's weights and reports would describe another model
    for item in tmp.iterdir():
        target = folder / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)
    tmp.rmdir()
