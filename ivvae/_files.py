"""File-system helpers shared by the readers and writers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
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


def write_pretrained(model: Any, folder: str | os.PathLike) -> None:
    """``save_pretrained`` (safetensors) with the umask's file modes and no ``_name_or_path``.

    diffusers stores the folder a model was loaded from as ``_name_or_path`` in the config it saves:
    a local path of whoever wrote the folder, which ``from_pretrained`` replaces on loading anyway.
    """
    model.save_pretrained(folder, safe_serialization=True)
    config_file = Path(folder) / "config.json"
    config = json.loads(config_file.read_text())
    if config.pop("_name_or_path", None) is not None:
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")  # diffusers' own layout
    honour_umask(folder)


def save_model_folder(model: Any, folder: Path, report_name: str | None = None, report: dict[str, Any] | None = None) -> None:
    """:func:`write_pretrained`, and a JSON report beside it."""
    write_pretrained(model, folder)
    if report_name is not None:
        (folder / report_name).write_text(json.dumps(report, indent=1))
