"""The authors' released checkpoints (``ivvae_z{Z}_dim{C}.pth``) <-> our ``from_pretrained`` folders.

:func:`convert_official_checkpoint` reads one of theirs into a folder of ours;
:func:`export_official_checkpoint` writes a model of ours (e.g. fine-tuned with ``ivvae train``)
as a ``.pth`` the authors' inference script loads.

Their state dicts name modules after their code (``encoder.downsamples.3.residual.2.conv_3d``);
ours after the paper (``encoder.blocks.3.conv1.convs.temporal.conv``). The mapping is one list of
renaming rules (ours -> theirs); the other direction is its inverse over the model's keys, so the
two can never disagree.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ._files import file_ancestor, honour_umask, refuse_nonempty_folder, save_model_folder, write_atomically
from .hub import first_few, nonfinite_tensors
from .models.ivvae import IVVAE
from .models.network import check_latent_normalization
from .models.presets import RELEASED

logger = logging.getLogger(__name__)

PAC_NAMES = ("PAC_0", "PAC_1", "PAC_3", "PAC_6", "PAC_9", "PAC_12")

# (pattern, replacement) applied in order to our key to get the released checkpoint's key.
_RULES: list[tuple[str, str]] = [
    (r"^encoder\.quant_conv\.", "conv1."),
    (r"^decoder\.post_quant_conv\.", "conv2."),
    (r"\.norm1\.", ".residual.0."),
    (r"\.norm2\.", ".residual.3."),
    (r"\.conv1\.", ".residual.2."),
    (r"\.conv2\.", ".residual.6."),
    (r"\.convs\.keyframe\.", ".conv_2d."),
    (r"\.convs\.temporal\.", ".conv_3d."),
    (r"^encoder\.conv_in\.", "encoder.conv1."),
    (r"^decoder\.conv_in\.", "decoder.conv1.conv."),
    (r"^encoder\.blocks\.", "encoder.downsamples."),
    (r"^decoder\.blocks\.", "decoder.upsamples."),
    (r"^(en|de)coder\.norm_out\.", r"\1coder.head.0."),
    (r"^encoder\.head\.fuse\.", "encoder.head.2.PAC_conv.conv."),
    (r"^decoder\.conv_out\.", "decoder.head.2."),
    (r"\.spatial\.keyframe\.", ".resample_2d.1."),
    (r"\.spatial\.temporal\.", ".resample_3d.1."),
    (r"\.time_convs\.temporal\.", ".time_conv."),
    (r"\.blocks\.keyframe\.", ".Attention_2d."),
    (r"\.blocks\.temporal\.", ".Attention_3d."),
    (r"\.(residual\.[26]|shortcut)\.(weight|bias)$", r".\1.conv.\2"),  # dense 2-D convs
]


class CheckpointError(ValueError):
    """A checkpoint that does not match the expected layout; the message lists what differs."""


def official_key(key: str) -> str:
    """Our state-dict key -> the released checkpoint's key (IV-VAE layout only)."""
    pac = re.match(r"^encoder\.head\.convs\.(\d+)\.(.*)$", key)
    if pac:
        return f"encoder.head.2.{PAC_NAMES[int(pac.group(1))]}.conv.{pac.group(2)}"
    for pattern, replacement in _RULES:
        key = re.sub(pattern, replacement, key)
    return key


def official_layout(model: IVVAE) -> dict[str, str]:
    """Released-checkpoint key -> our key, for every tensor of ``model``."""
    return {official_key(key): key for key in model.state_dict()}


def _load_failure(error: BaseException) -> str:
    """Why torch.load failed, and the fix: for weights-only unpickling the unpickler's reason, without
    torch's advice (retry with ``weights_only=False``, or allowlist the class with
    ``add_safe_globals``), either of which runs code from a file of unknown origin."""
    text = str(error)
    if "WeightsUnpickler error:" not in text:
        first = next((line for line in text.splitlines() if line.strip()), "")
        reason = f"{type(error).__name__}: {first}" if first else type(error).__name__
        return f"not a PyTorch state dict ({reason}); pass the released ivvae_z*_dim*.pth"
    reason = " ".join(text.split("WeightsUnpickler error:", 1)[1].strip().split("\n\n")[0].split())
    unsupported = re.match(r"Unsupported global: GLOBAL (\S+)", reason)
    if unsupported:
        return (f"not a plain state dict of tensors: it pickles a Python object ({unsupported.group(1)}), which is not read "
                "here for safety; if you trust the file, load it in Python and save only the weights "
                "(torch.save(model.state_dict(), 'weights.pth')), then convert that file")
    reason = reason.split(" Please use ")[0]  # torch's allowlisting advice, see above
    return f"not a PyTorch state dict ({type(error).__name__}: {reason}); pass the released ivvae_z*_dim*.pth"


def load_official_state_dict(path: str | os.PathLike, key: str | None = None) -> dict[str, torch.Tensor]:
    """Read a released ``.pth`` (or a safetensors file, whatever its name) safely (``weights_only``),
    unwrapping common containers; ``key`` names the entry holding the weights when several could."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: '{path}' (pass the path of ivvae_z*_dim*.pth)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot read checkpoint '{path}': the file is empty (an interrupted download?)")
    state = _read_safetensors(path) if _is_safetensors(path) else _read_pickle(path)
    state = _unwrapped(state, path, key)
    return _without_common_prefix({name.removeprefix("module."): value for name, value in state.items()}, path)


def _is_safetensors(path: Path) -> bool:
    """A safetensors file, whatever its name: an 8-byte little-endian header length, then a JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and int.from_bytes(head[:8], "little") < path.stat().st_size and head[8:9] == b"{"


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"cannot read checkpoint '{path}': a damaged safetensors file ({' '.join(str(error).split())})") from None


def _read_pickle(path: Path) -> Any:
    if path.suffix.lower() == ".safetensors":  # named so, but without the header (_is_safetensors said no)
        raise CheckpointError(f"cannot read checkpoint '{path}': not a safetensors file (no safetensors header: truncated, or "
                              "another format renamed?); re-download it")
    with open(path, "rb") as file:
        if not file.read(2).startswith((b"PK", b"\x80")):  # torch.save writes a zip archive, or (legacy) a pickle
            raise CheckpointError(f"cannot read checkpoint '{path}': not a PyTorch state dict (neither a torch.save zip "
                                  "archive, a pickle nor safetensors); pass the released ivvae_z*_dim*.pth")
    try:
        with warnings.catch_warnings(), open(path, "rb") as file:  # torch warns about legacy pickles before failing
            warnings.simplefilter("ignore")
            # a file object, not the path: some torch versions pick a reader by the file's name
            return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle/zip errors: name the file, not the unpickler internals
        raise CheckpointError(f"cannot read checkpoint '{path}': {_load_failure(error)}") from None


def _is_weights(value: Any) -> bool:
    """A tensor that can be a weight: not a 0-d counter (``torch.tensor(5)``) saved beside the weights."""
    return isinstance(value, torch.Tensor) and value.dim() > 0


def _weight_dicts(state: Mapping) -> dict[str, Mapping]:
    """The entries of ``state`` that are dicts holding weights: where training scripts keep the model
    (``state_dict``, ``model``, ``ema``, ...) beside the optimizer and counters."""
    return {str(name): value for name, value in state.items()
            if isinstance(value, Mapping) and any(_is_weights(v) for v in value.values())}


def _unwrapped(state: Any, path: Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """The state dict of tensors inside a training checkpoint's container; other entries beside it are dropped."""
    if key is not None:
        if not isinstance(state, Mapping) or key not in state or not isinstance(state[key], Mapping):
            found = ", ".join(_weight_dicts(state)) if isinstance(state, Mapping) else ""
            raise CheckpointError(f"'{path}' has no dict of tensors under {key!r}" + (f"; it has: {found}" if found else ""))
        state = state[key]
    while isinstance(state, Mapping) and not any(_is_weights(v) for v in state.values()) and _weight_dicts(state):
        candidates = _weight_dicts(state)
        if len(candidates) > 1:
            raise CheckpointError(f"'{path}' holds several dicts of weights: {', '.join(map(repr, candidates))}; pass --key NAME "
                                  "to choose one (e.g. the EMA weights)")
        (name, state), = candidates.items()
        logger.warning("'%s': reading the weights under %r", path, name)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"'{path}' does not hold a state dict of tensors (it holds a {type(state).__name__})")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        found = ", ".join(f"{k!r} ({type(v).__name__})" for k, v in list(state.items())[:8])
        raise CheckpointError(f"'{path}' does not hold a state dict of tensors; its top-level entries are: {found}. Load it in "
                              "Python, take the weights' dict and torch.save it, then convert that file")
    dropped = [k for k in state if k not in tensors]
    if dropped:
        logger.warning("'%s': ignoring %d entries that are not tensors (%s)", path, len(dropped), ", ".join(map(str, dropped[:5])))
    return tensors


def _without_common_prefix(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Strip a prefix every key shares (``vae.``, ``first_stage_model.``) where the released names lie beneath it."""
    anchor = "encoder.conv1.conv_2d.weight"
    if anchor in state:
        return state
    prefix = next((key[: -len(anchor)] for key in state if key.endswith("." + anchor)), None)
    if prefix is None or not all(key.startswith(prefix) for key in state):
        return state
    logger.warning("'%s': every tensor name starts with '%s'; reading them without it", path, prefix)
    return {key[len(prefix):]: value for key, value in state.items()}


def infer_shape(state: Mapping[str, torch.Tensor]) -> tuple[int, int]:
    """The latent channels Z and base width C of a released-layout state dict, from its tensor shapes."""
    try:
        latent = state["conv1.conv_2d.weight"].shape[0]
        width = state["encoder.conv1.conv_2d.weight"].shape[0]
    except KeyError as missing:
        raise CheckpointError(f"not an IV-VAE checkpoint: tensor {missing} is missing; pass --variant to compare layouts") from None
    except IndexError:  # a 0-d tensor under one of those names
        raise CheckpointError("not an IV-VAE checkpoint: its first convolutions hold scalars, not weights") from None
    return latent, width


def infer_variant(state: Mapping[str, torch.Tensor]) -> str | None:
    """The released variant whose (Z, C) matches the tensors; None for the released layout at another Z or C."""
    latent, width = infer_shape(state)
    for name, config in RELEASED.items():
        if config["latent_channels"] == latent and config["base_channels"] == width:
            return name
    return None


def _layout_report(expected: Mapping[str, torch.Size], found: Mapping[str, torch.Tensor], what: str) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = [
        f"{k}: expected {tuple(expected[k])}, found {tuple(found[k].shape)}"
        for k in expected
        if k in found and found[k].shape != expected[k]
    ]
    if missing or unexpected or mismatched:
        lines = [f"{what} does not match the expected layout:"]
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if keys:
                shown = keys[:20] + ([f"... and {len(keys) - 20} more"] if len(keys) > 20 else [])
                lines.append(f"  {label} ({len(keys)}): " + "; ".join(shown))
        raise CheckpointError("\n".join(lines))


def _check_values(state: Mapping[str, torch.Tensor], what: str) -> None:
    """Weights must be floating point (integers would be cast silently) and finite (NaN weights
    convert without an error and decode garbage)."""
    integers = [f"{key} ({str(value.dtype).removeprefix('torch.')})" for key, value in state.items() if not value.is_floating_point()]
    if integers:
        raise CheckpointError(f"{what}: {len(integers)} tensor(s) are not floating point: {first_few(integers)}; "
                              "pass the released ivvae_z*_dim*.pth")
    broken = nonfinite_tensors(dict(state))
    if broken:
        raise CheckpointError(f"{what}: {len(broken)} tensor(s) hold NaN or infinite values: {first_few(broken)}; the checkpoint "
                              "is broken (a diverged training run?): pass the released ivvae_z*_dim*.pth")


def released_variant(model: IVVAE) -> str | None:
    """The released variant of ``model``'s Z and C (None: the released layout at another Z or C)."""
    shape = (model.config.latent_channels, model.config.base_channels)
    return next((name for name, config in RELEASED.items() if (config["latent_channels"], config["base_channels"]) == shape), None)


def _model_config(state: Mapping[str, torch.Tensor], variant: str | None) -> tuple[dict[str, Any], str]:
    """The constructor arguments for ``state`` and what to call it in messages: a released variant's
    (``variant``, or the one its shapes match), else the released layout at the tensors' Z and C, whose
    latent normalisation nobody measured (scaling_factor 1, shift_factor 0)."""
    variant = variant or infer_variant(state)
    if variant is not None:
        if variant not in RELEASED:
            raise CheckpointError(f"unknown variant {variant!r}; known: {', '.join(RELEASED)}")
        return dict(RELEASED[variant]), f"checkpoint for {variant}"
    latent, width = infer_shape(state)
    return dict(latent_channels=latent, base_channels=width, scaling_factor=1.0, shift_factor=0.0), \
        f"checkpoint (released layout at Z={latent}, C={width})"


def _layout_of(config: Mapping[str, Any], what: str) -> dict[str, torch.Size]:
    """Released-checkpoint key -> shape of the model ``config`` builds, on the meta device: the shapes
    a file claims are checked before any memory is allocated for them."""
    try:
        with torch.device("meta"):
            model = IVVAE(**config)
    except (ValueError, TypeError) as error:  # e.g. an odd Z, which two branches cannot split
        raise CheckpointError(f"{what}: not a valid IV-VAE ({' '.join(str(error).split())})") from None
    ours = model.state_dict()
    return {key: ours[name].shape for key, name in official_layout(model).items()}


def from_official_state_dict(state: Mapping[str, torch.Tensor], variant: str | None = None) -> IVVAE:
    """Build the model of ``variant`` (inferred if None: a released variant, else the released layout at
    the tensors' Z and C with scaling_factor 1 and shift_factor 0) and load a released state dict strictly."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"expected a state dict {{name: tensor}} of a released checkpoint (load_official_state_dict reads "
                              f"one), got {type(state).__name__}")
    config, what = _model_config(state, variant)
    _layout_report(_layout_of(config, what), state, what)
    _check_values(state, what)
    model = IVVAE(**config)
    layout = official_layout(model)
    ours = model.state_dict()
    model.load_state_dict({layout[k]: v.to(ours[layout[k]].dtype) for k, v in state.items()}, strict=True)
    return model


#: Config fields that fix the released layout; the variants differ only in Z, C and normalisation.
_LAYOUT_FIELDS = ("in_channels", "channel_multipliers", "encoder_blocks", "decoder_blocks", "branches", "temporal_downsample",
                  "full_compression_attention", "parallel_atrous", "atrous_dilations")


def _released_layout_differences(model: IVVAE) -> list[str]:
    """How ``model``'s architecture departs from the released one (IV-VAE defaults at any Z and C)."""
    defaults = inspect.signature(IVVAE.__init__).parameters
    found = []
    for name in _LAYOUT_FIELDS:
        value, released = model.config.get(name), defaults[name].default
        as_tuple = lambda v: tuple(v) if isinstance(v, (list, tuple)) else v  # noqa: E731
        if as_tuple(value) != as_tuple(released):
            found.append(f"{name} {as_tuple(value)} (released: {as_tuple(released)})")
    return found


def to_official_state_dict(model: IVVAE) -> dict[str, torch.Tensor]:
    """Our model's weights under the released checkpoint's names (for the authors' code).

    Raises:
        CheckpointError: ``model`` is not an IV-VAE of the released architecture (another class of
            the family, an ablation): its tensors have no place in the released layout.
    """
    if type(model) is not IVVAE:
        raise CheckpointError(f"only an IVVAE of the released architecture has the released checkpoints' layout, got "
                              f"{type(model).__name__}")
    differences = _released_layout_differences(model)
    if differences:
        raise CheckpointError(f"this IVVAE is not of the released architecture ({'; '.join(differences)}), so the authors' code "
                              "cannot load its weights")
    return {official_key(key): value for key, value in model.state_dict().items()}


def convert_official_checkpoint(
    path: str | os.PathLike, out_dir: str | os.PathLike, variant: str | None = None, overwrite: bool = False,
    scaling_factor: float | None = None, shift_factor: float | None = None, key: str | None = None,
) -> IVVAE:
    """Convert a released ``.pth`` into a ``from_pretrained`` folder (config + safetensors).

    The latent normalisation is, in order of precedence: ``scaling_factor`` / ``shift_factor``;
    the ``CHECKPOINT.pth.json`` that :func:`export_official_checkpoint` writes beside the file
    (a ``.pth`` holds weights only); the released variant's; else 1 and 0. ``key``: the entry of
    a training checkpoint that holds the weights, where it has several (``ema``, ``model``).
    """
    if Path(out_dir).is_file():  # not even with overwrite: a folder never replaces a file (the checkpoint itself?)
        raise FileExistsError(f"output '{out_dir}' is a file, not a folder; choose a new folder")
    out_dir = refuse_nonempty_folder(out_dir, overwrite)
    model = from_official_state_dict(load_official_state_dict(path, key), variant)
    given = _given(scaling_factor=scaling_factor, shift_factor=shift_factor)
    recorded = read_normalization(path, model) if len(given) < 2 else None  # both given: the file is not needed
    normalization = {**(recorded or {}), **given}
    if normalization:
        merged = {**{name: model.config[name] for name in ("scaling_factor", "shift_factor")}, **normalization}
        check_latent_normalization(**merged)
        model.register_to_config(**merged)
    save_model_folder(model, out_dir)  # all or nothing: a failed write (a full disk) is one line naming out_dir
    return model


def _given(**values: float | None) -> dict[str, float]:
    """The ``values`` that are not None."""
    return {name: value for name, value in values.items() if value is not None}


def normalization_file(checkpoint: str | os.PathLike) -> Path:
    """Where the latent normalisation of an exported ``.pth`` is kept: ``CHECKPOINT.pth.json``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + ".json")


def read_normalization(checkpoint: str | os.PathLike, model: IVVAE | None = None) -> dict[str, float] | None:
    """``{"scaling_factor": ..., "shift_factor": ...}`` from the checkpoint's normalisation file, if any;
    with ``model`` (the checkpoint's), the file must be for its Z and width (not left from another export)."""
    path = normalization_file(checkpoint)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        values = {name: float(data[name]) for name in ("scaling_factor", "shift_factor")}
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"cannot read the latent normalisation '{path}' ({type(error).__name__}: {error}); fix or delete it, "
                              "or give --scaling-factor and --shift-factor") from None
    if not all(math.isfinite(v) for v in values.values()) or values["scaling_factor"] == 0:
        raise CheckpointError(f"'{path}': scaling_factor must be a finite non-zero number and shift_factor finite; fix or delete it")
    if model is not None:
        _check_recorded_shape(path, data, model)
    return values


def _check_recorded_shape(path: Path, data: Mapping[str, Any], model: IVVAE) -> None:
    """A normalisation file beside a ``.pth`` that was since replaced (another Z or width) is not its."""
    for name in ("latent_channels", "base_channels"):
        if name in data and data[name] != model.config[name]:
            raise CheckpointError(f"'{path}' records {name} {data[name]} but the checkpoint has {model.config[name]}: it is from "
                                  "another export; delete it, or give --scaling-factor and --shift-factor")


def _write_failure(error: OSError) -> str:
    """Why a write failed, in words: the OS's reason (``No space left on device``)."""
    return error.strerror or " ".join(str(error).split())


def _first_missing(folder: Path) -> Path | None:
    """The outermost folder of ``folder``'s path that does not exist yet (what writing it creates)."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing = path
    return missing


#: File names :func:`export_official_checkpoint` writes (what ``torch.load`` users expect).
CHECKPOINT_SUFFIXES = (".pth", ".pt")


def export_official_checkpoint(model: IVVAE, path: str | os.PathLike, overwrite: bool = False) -> int:
    """Write ``model``'s weights under the released names as a ``.pth`` state dict (float32, CPU),
    which the authors' code and :func:`convert_official_checkpoint` load. The file is written
    under a temporary name and renamed, so an interrupted export never leaves a half file.

    Returns:
        The number of tensors written.

    Raises:
        CheckpointError: ``model`` is not of the released architecture (see :func:`to_official_state_dict`).
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError: ``path`` does not end in ``.pth``/``.pt``, is a folder or lies under a file.
    """
    path = Path(path)
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ValueError(f"'{path}': released checkpoints are .pth files; name the output *.pth")
    if path.is_dir():
        raise ValueError(f"'{path}' is a folder; give a file name such as '{path / 'model.pth'}'")
    if path.exists() and not overwrite:
        raise FileExistsError(f"refusing to overwrite existing file '{path}' (pass --overwrite)")
    if file_ancestor(path) is not None:
        raise ValueError(f"cannot write '{path}': '{file_ancestor(path)}' is a file, not a folder")
    if normalization_file(path).exists() and not overwrite:
        raise FileExistsError(f"refusing to overwrite existing file '{normalization_file(path)}' (pass --overwrite)")
    state = {key: value.detach().to("cpu", torch.float32).contiguous() for key, value in to_official_state_dict(model).items()}
    created, tmp = _first_missing(path.parent), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        _save_state(state, tmp)
        honour_umask(tmp)
        os.replace(tmp, path)
    except OSError as error:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise OSError(f"cannot write '{path}': {_write_failure(error)}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    _write_normalization(model, path)
    return len(state)


def _write_normalization(model: IVVAE, checkpoint: Path) -> None:
    """The authors' loader is strict (no extra keys in the ``.pth``): the model's latent normalisation,
    which a diffusion model trained on its latents depends on, goes beside it."""
    text = json.dumps({"scaling_factor": float(model.config.scaling_factor), "shift_factor": float(model.config.shift_factor),
                       "latent_channels": int(model.config.latent_channels), "base_channels": int(model.config.base_channels)},
                      indent=2) + "\n"
    try:
        honour_umask(write_atomically(normalization_file(checkpoint), lambda tmp: tmp.write_text(text)))
    except OSError as error:
        raise OSError(f"cannot write '{normalization_file(checkpoint)}': {_write_failure(error)}") from None


class _RecordingFile:
    """A file for ``torch.save`` that keeps the OSError of a failed write: torch reports a full disk
    only as ``RuntimeError: [enforce fail at inline_container.cc...]``, without the reason."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.error = file, None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.file.flush()


def _save_state(state: dict[str, torch.Tensor], path: str) -> None:
    """``torch.save(state, path)``; a failed write raises the OSError behind it."""
    with open(path, "wb") as file:
        recorder = _RecordingFile(file)
        try:
            torch.save(state, recorder)
        except RuntimeError as error:
            raise recorder.error or OSError(" ".join(str(error).split())) from None
