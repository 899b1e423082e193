"""Writing a benchmark's results: JSON, parent folders made, the path printed."""

from __future__ import annotations

import json
from pathlib import Path


def write_results(path: Path | None, result: dict) -> None:
    """Write ``result`` as indented JSON to ``path`` (nothing when ``path`` is None)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
