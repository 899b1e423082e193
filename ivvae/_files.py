"""File-system helpers shared by the writers."""

from __future__ import annotations

import os
from pathlib import Path


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
