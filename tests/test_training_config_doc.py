"""docs/training-config.md stays the complete config reference: every field of the config dataclasses is in
it, every key it names exists, and its YAML example loads with the config loader."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path

from ivvae.train.config import TrainConfig, _public_fields, _yaml_key, load_config

DOC = Path(__file__).resolve().parents[1] / "docs" / "training-config.md"


def _dataclass_of(tp) -> type | None:
    """The config dataclass a field's annotation holds (through ``X | None`` and ``list[X]``), if any."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType, list):
        return next((c for c in map(_dataclass_of, typing.get_args(tp)) if c is not None), None)
    return tp if dataclasses.is_dataclass(tp) else None


def _schema_keys(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """Every dotted YAML key of the schema; list items as ``N`` (``data.buckets.N.kind``)."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in _public_fields(cls):
        key, tp = prefix + _yaml_key(f), hints[f.name]
        keys.append(key)
        inner = _dataclass_of(tp)
        if inner is not None:
            item = ".N." if typing.get_origin(tp) is list else "."
            keys += _schema_keys(inner, key + item)
    return keys


def _documented_keys(text: str) -> set[str]:
    """Keys in the first column of the doc's tables."""
    return set(re.findall(r"^\| `([A-Za-z_][A-Za-z0-9_.]*)` \|", text, flags=re.MULTILINE))


def test_every_config_field_is_documented():
    """A value key needs a table row; a section (a key with keys below it) at least a mention in code."""
    text = DOC.read_text()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    documented, mentioned = _documented_keys(text), set(re.findall(r"`([^`]+)`", prose))
    keys = _schema_keys()
    sections = {key.rsplit(".", 1)[0].removesuffix(".N") for key in keys if "." in key}
    missing = [key for key in keys if key not in documented and not (key in sections and key in mentioned)]
    assert len(_schema_keys()) > 100
    assert not missing, "config keys missing from docs/training-config.md:\n" + "\n".join(missing)


def test_every_documented_key_exists():
    unknown = sorted(_documented_keys(DOC.read_text()) - set(_schema_keys()) - {"base"})
    assert not unknown, "docs/training-config.md names keys the schema lacks:\n" + "\n".join(unknown)


def test_the_example_config_loads(tmp_path):
    blocks = re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(), flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1
    path = tmp_path / "my_config.yaml"
    path.write_text(blocks[0])
    cfg = load_config(path)
    assert cfg.data.sources == ["data/my_videos"] and cfg.data.image_sources is None  # stills from the user's data
    assert cfg.train.max_steps == 2 and [b.kind for b in cfg.data.buckets] == ["video", "image"]
