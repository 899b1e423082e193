"""The documentation stays true: its Python examples run, and every command, option and config key
it (or an example in ``ivvae --help``) names exists.

Docs drift silently when an option or a config key is renamed; these tests read the Markdown the
way a user does (fenced code blocks, inline code) and check it against the parsers and the config
schema.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shlex
import types
import typing
from pathlib import Path

import pytest
import torch
from cli_helpers import run, write_sine_video

from ivvae.cli import build_parser
from ivvae.models import IVVAE
from ivvae.train.config import TrainConfig, _public_fields, _yaml_key

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "default-model.md", ROOT / "benchmarks" / "README.md"]
CONFIG_SECTIONS = tuple(name for name, value in vars(TrainConfig()).items() if dataclasses.is_dataclass(value))
FILE_SUFFIXES = (".log", ".json", ".jsonl", ".yaml", ".py", ".png", ".md", ".sh", ".pth", ".pt", ".safetensors", ".tar")


# --------------------------------------------------------------------------------------------
# reading the Markdown
# --------------------------------------------------------------------------------------------
def _fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def _prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def _inline_code(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", _prose(text))


def _command_lines(text: str) -> list[str]:
    """Shell commands of the bash blocks (continuation lines joined) and inline code starting with ``ivvae``."""
    lines = []
    for block in _fenced_blocks(text, "bash"):
        lines += block.replace("\\\n", " ").splitlines()
    lines += [" ".join(code.split()) for code in _inline_code(text) if code.startswith("ivvae ")]
    return lines


def _segments(line: str) -> list[list[str]]:
    """The simple commands of a shell line, split at ``&&``, ``|`` and ``;``; comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote in a prose fragment
        tokens = line.split()
    segments, current = [], []
    for token in tokens:
        if token in ("&&", "||", "|", ";", "&"):
            segments.append(current)
            current = []
        else:
            current.append(token)
    return [_command_words(segment) for segment in segments + [current] if _command_words(segment)]


def _command_words(tokens: list[str]) -> list[str]:
    """A simple command without its leading shell keyword (``do``, ``then``) and variable assignments."""
    while tokens and (tokens[0] in ("do", "then", "else", "time") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[0])):
        tokens = tokens[1:]
    return tokens


def _options(tokens: list[str]) -> list[str]:
    """``--name`` of each option token (``[--tile`` -> ``--tile``, ``--crf=20`` -> ``--crf``)."""
    options = []
    for token in tokens:
        token = token.strip("[]")
        if token.startswith("--") and len(token) > 2:
            options.append(token.split("=")[0].rstrip("]"))
    return options


def _help_texts() -> dict[str, str]:
    """The examples of ``ivvae --help`` and of each ``ivvae COMMAND --help`` (description and epilog)."""
    parser = build_parser()
    texts = {"ivvae --help": parser.epilog or ""}
    for name, sub in _subcommands(parser).items():
        texts[f"ivvae {name} --help"] = f"{sub.description or ''}\n{sub.epilog or ''}"
    return texts


def _documented(kind: str) -> list[tuple[str, list[str]]]:
    """(where, tokens after the program) of each ``ivvae`` or ``python benchmarks/`` call in the docs and the help."""
    sources = {doc.name: _command_lines(doc.read_text()) for doc in DOCS}
    sources |= {where: text.replace("\\\n", " ").splitlines() for where, text in _help_texts().items()}
    found = []
    for doc, lines in sources.items():
        for line in lines:
            for tokens in _segments(line):
                if kind == "ivvae":
                    if tokens[0] == "ivvae":
                        found.append((doc, tokens[1:]))
                    elif "-m" in tokens and "ivvae.train.trainer" in tokens:  # accelerate launch / torchrun
                        found.append((doc, ["train"] + tokens[tokens.index("ivvae.train.trainer") + 1:]))
                elif kind == "benchmark" and len(tokens) > 1 and tokens[0] == "python" and tokens[1].startswith("benchmarks/"):
                    found.append((doc, tokens[1:]))
    return found


# --------------------------------------------------------------------------------------------
# the config schema
# --------------------------------------------------------------------------------------------
def _dataclass_in(tp):
    """The dataclass (or list/dict type) a field's annotation leads to, through ``X | None``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        candidates = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        return next((arg for arg in candidates if dataclasses.is_dataclass(arg)), candidates[0])
    return tp


def _is_config_key(dotted: str) -> bool:
    """Whether ``dotted`` (``loss.mse_weight``, ``data.buckets.0.batch_size``) is a key of the YAML schema."""
    node = TrainConfig
    for part in dotted.split("."):
        node = _dataclass_in(node)
        origin = typing.get_origin(node)
        if origin is list:
            if not part.isdigit():
                return False
            node = typing.get_args(node)[0]
        elif origin is dict:
            return True  # free-form mapping below this point
        elif dataclasses.is_dataclass(node):
            hints = typing.get_type_hints(node)
            fields = {_yaml_key(f): hints[f.name] for f in _public_fields(node)}
            if part not in fields:
                return False
            node = fields[part]
        else:
            return False  # below a scalar
    return True


def _documented_config_keys() -> list[tuple[str, str]]:
    """(document, key) of each config key in inline code or after ``--set``."""
    pattern = re.compile(rf"^((?:{'|'.join(CONFIG_SECTIONS)})\.[A-Za-z0-9_.]*[A-Za-z0-9_])(?:[=:]|$)")
    keys = []
    for doc in DOCS:
        text = doc.read_text()
        candidates = [code.split()[0] for code in _inline_code(text) if code.strip()]
        candidates += re.findall(r"--set\s+([^\s`\"']+)", text)
        for candidate in candidates:
            match = pattern.match(candidate)
            if match and not match.group(1).endswith(FILE_SUFFIXES):
                keys.append((doc.name, match.group(1)))
    return keys


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------
def _subcommands(parser=None) -> dict[str, object]:
    parser = parser or build_parser()
    return next(action for action in parser._actions if action.dest == "command").choices


def test_the_readers_find_what_the_docs_show():
    """The extraction itself (so that an empty match cannot pass the tests below)."""
    commands = {tokens[0] for _, tokens in _documented("ivvae") if tokens}
    helps = {where for where, _ in _documented("ivvae") if where.endswith("--help")}
    assert {"ivvae --help", "ivvae encode-dataset --help", "ivvae eval --help", "ivvae train --help"} <= helps
    assert {"demo", "reconstruct", "encode", "decode", "convert", "train", "eval", "encode-dataset"} <= commands
    assert len(_documented("benchmark")) >= 4
    keys = {key for _, key in _documented_config_keys()}
    assert {"loss.mse_weight", "train.max_minutes", "data.buckets.0.batch_size", "train.compile.enabled"} <= keys
    assert not _is_config_key("loss.no_such_weight") and not _is_config_key("train.max_minutes.deeper")
    assert _options(["[--tile", "SIZE]", "--dtype", "fp32|bf16]", "--crf=20"]) == ["--tile", "--dtype", "--crf"]


def test_every_documented_ivvae_command_and_option_exists():
    subcommands = _subcommands()
    wrong = []
    for doc, tokens in _documented("ivvae"):
        if not tokens or tokens[0].startswith("-") or tokens[0].isupper():  # `ivvae COMMAND --help`
            continue
        command = subcommands.get(tokens[0])
        if command is None:
            wrong.append(f"{doc}: ivvae {tokens[0]} (no such command)")
            continue
        known = set(command._option_string_actions)
        wrong += [f"{doc}: ivvae {tokens[0]} {option}" for option in _options(tokens[1:]) if option not in known]
    assert not wrong, "documented but not accepted:\n" + "\n".join(wrong)


def test_every_documented_benchmark_option_exists(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the scripts import their sibling _results
    wrong = []
    for script, options in _benchmark_options().items():
        spec = importlib.util.spec_from_file_location(Path(script).stem, ROOT / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        with pytest.raises(SystemExit) as exit_:
            module.main(["--help"])
        assert exit_.value.code == 0, f"{script} --help failed"
        accepted = set(re.findall(r"--[a-z][a-z0-9-]*", capsys.readouterr().out))
        wrong += [f"{script} {option}" for option in sorted(options - accepted)]
    assert not wrong, "documented but not accepted:\n" + "\n".join(wrong)


def _benchmark_options() -> dict[str, set[str]]:
    options: dict[str, set[str]] = {}
    for _, tokens in _documented("benchmark"):
        assert (ROOT / tokens[0]).is_file(), f"documented script {tokens[0]} does not exist"
        options.setdefault(tokens[0], set()).update(_options(tokens[1:]))
    return options


def test_every_documented_config_key_exists():
    wrong = sorted({f"{doc}: {key}" for doc, key in _documented_config_keys() if not _is_config_key(key)})
    assert not wrong, "config keys the docs name but the schema lacks:\n" + "\n".join(wrong)


@pytest.fixture
def readme_python() -> list[str]:
    blocks = _fenced_blocks((ROOT / "README.md").read_text(), "python")
    assert len(blocks) == 4, "README's Python examples changed: update this test's setup"
    return blocks


@pytest.mark.filterwarnings("ignore:This DataLoader will create 4 worker processes")  # the example's num_workers=4
def test_the_readme_python_examples_run(readme_python, tmp_path, monkeypatch, capsys):
    """The API, streaming/tiling and latent data set examples, in order, in one namespace. The
    converted checkpoint they name is a tiny model here, and the example video is 64x64 instead of
    256x256 (the bundled model runs it in a second)."""
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    IVVAE(latent_channels=16, base_channels=8).save_pretrained("models/ivvae_z16_dim64")
    namespace: dict = {}

    api, tiling, pieces, latents = readme_python
    exec(compile(api.replace("256", "64"), "README.md (Python API)", "exec"), namespace)
    assert namespace["z"].shape == (1, 16, 5, 8, 8)
    assert namespace["recon"].shape == namespace["same"].shape == namespace["video"].shape
    exec(compile(tiling, "README.md (streaming and tiling)", "exec"), namespace)
    write_sine_video(tmp_path / "long.mp4", frames=9, height=32, width=48)
    exec(compile(pieces, "README.md (videos in pieces)", "exec"), namespace)
    assert namespace["frames"].shape == (1, 3, 9, 32, 48) and namespace["reconstruction"].shape == (4, 32, 48, 3)

    write_sine_video(tmp_path / "videos" / "a.mp4", frames=9, height=48, width=64)
    write_sine_video(tmp_path / "videos" / "b.mp4", frames=9, height=32, width=32)  # native sizes differ: one shape a batch
    code, _, err = run(capsys, "encode-dataset", "LATENTS_DIR", "--model", "models/ivvae_z16_dim64",
                       "--data", tmp_path / "videos", "--frames", 9, "--no-progress")
    assert code == 0, err
    exec(compile(latents, "README.md (latent data set)", "exec"), namespace)
    assert namespace["item"]["latents"].shape == (16, 3, 6, 8)
    assert namespace["frames"].shape == (9, 48, 64, 3) and namespace["frames"].dtype == torch.uint8
    loader = namespace["loader"]
    loader.num_workers = 0  # the example's 4 workers cost seconds here
    assert sorted(tuple(batch.shape) for batch in loader) == [(1, 16, 3, 4, 4), (1, 16, 3, 6, 8)]  # torch.stack used to fail
