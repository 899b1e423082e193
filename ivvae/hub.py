"""Finding and loading models: a ``from_pretrained`` folder, or a model bundled with the package.

A model is named either by a folder written by ``save_pretrained`` (``config.json`` +
``diffusion_pytorch_model.safetensors``; ``ivvae convert`` and training write such folders) or by
the short name of a model shipped inside the package at ``ivvae/pretrained/<name>/``.

Every failure is a one-line :class:`ModelNotFoundError` (a ``FileNotFoundError``) or
:class:`ModelLoadError` (a ``ValueError``) naming the path that was looked at and the fix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a model is loaded, so `ivvae --help` stays instant
    import torch

__all__ = [
    "DEFAULT_MODEL",
    "HELD_OUT_SOURCES",
    "HELD_OUT_START_FRACTION",
    "PRETRAINED_DIR",
    "ModelLoadError",
    "ModelNotFoundError",
    "bundled_model_folder",
    "bundled_models",
    "check_model_source",
    "load_model",
    "model_class",
    "resolve_model_path",
]

#: The model used when none is given (bundled inside the package once trained).
DEFAULT_MODEL = "ivvae-small-z16"

#: The default model's held-out data, never trained on (configs/small_z16/ train on frames
#: before ``HELD_OUT_START_FRACTION`` of bikes and bigbuckbunny only): carphone entirely, and
#: the tail of the other two sample videos from this fraction of their frames on.
HELD_OUT_SOURCES = ("sample:carphone", "sample:bikes", "sample:bigbuckbunny")
HELD_OUT_START_FRACTION = 0.8

#: Where bundled models live: ``ivvae/pretrained/<name>/config.json`` + weights.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"

CONFIG_NAME = "config.json"
WEIGHTS_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")

#: Model classes a config's ``_class_name`` may name (those present in :mod:`ivvae.models`).
MODEL_CLASSES = ("IVVAE", "ImageVAE", "CausalVAE")

# Worded for every caller: some take the model as --model DIR, others (info, inflate, grow) as an argument.
_FIX = (
    "give a model folder made by `ivvae convert CHECKPOINT.pth DIR` or by training "
    "(config.json + diffusion_pytorch_model.safetensors)"
)
_REEXPORT = "re-download or re-export it (`ivvae convert CHECKPOINT.pth DIR`, `ivvae train CONFIG --export-only`)"
#: Tensors named in an error before "... (N in all)".
_SHOWN = 5


class ModelNotFoundError(FileNotFoundError):
    """No model folder or bundled model of that name."""


class ModelLoadError(ValueError):
    """A model folder exists but cannot be loaded (wrong config, missing or mismatched weights)."""


def bundled_models() -> list[str]:
    """Names of the models shipped inside the package (folders of ``ivvae/pretrained/``)."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / CONFIG_NAME).is_file())


def bundled_model_folder(name: object) -> Path | None:
    """The folder of the bundled model called ``name``, if ``name`` is such a short name and not
    also an existing path; else None (so a folder of the same name in the working directory wins)."""
    if not isinstance(name, str) or not _looks_like_name(name) or Path(name).exists():
        return None
    folder = PRETRAINED_DIR / name
    return folder if (folder / CONFIG_NAME).is_file() else None


def _looks_like_name(text: str) -> bool:
    return bool(text) and os.sep not in text and "/" not in text and not text.startswith((".", "~"))


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """The folder of a model: ``name_or_path`` itself if it is a folder, else a bundled model.

    Raises:
        ModelNotFoundError: neither a folder nor a bundled model of that name.
        ModelLoadError: a file instead of a folder, or a folder without ``config.json``.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        return _check_folder(path)
    if _looks_like_name(text):
        bundled = PRETRAINED_DIR / text
        if bundled.is_dir():
            return _check_folder(bundled)
        if text == DEFAULT_MODEL:
            raise ModelNotFoundError(
                f"the default model '{text}' is not installed (looked for '{bundled}'); name another (--model DIR, "
                f"or `ivvae info DIR`): {_FIX}"
            )
        raise model_not_found(text)
    raise ModelNotFoundError(f"model folder '{path}' not found; {_FIX}")


def model_not_found(name: str, hub_hint: bool = False) -> ModelNotFoundError:
    """The error for a ``name`` that is neither a folder nor a bundled model; a preset's name is
    told how to get weights. ``hub_hint``: ``from_pretrained`` also looked in the Hugging Face cache."""
    from .models.presets import PRESETS, RELEASED

    if name in PRESETS:
        how = (f"convert the authors' {name}.pth with `ivvae convert {name}.pth DIR --variant {name}`"
               if name in RELEASED else "train one (`ivvae train`)")
        return ModelNotFoundError(f"'{name}' is a preset, an architecture without weights; {how} and give the folder it writes")
    available = ", ".join(bundled_models()) or "none installed"
    looked = f"no folder '{Path(name).expanduser()}'"
    if _looks_like_name(name):
        looked += f", no bundled model '{PRETRAINED_DIR / name}' (bundled: {available})"
    if hub_hint:
        looked += (", and no Hugging Face Hub repo of that id in the local cache (nothing is downloaded unless you "
                   "pass local_files_only=False)")
    return ModelNotFoundError(f"model '{name}' not found: {looked}; {_FIX}")


def _check_folder(path: Path) -> Path:
    if path.is_file():
        hint = " (a released checkpoint: convert it first with `ivvae convert`)" if path.suffix in (".pth", ".pt", ".ckpt") else ""
        raise ModelLoadError(f"'{path}' is a file, not a model folder{hint}; {_FIX}")
    if not (path / CONFIG_NAME).is_file():
        raise ModelLoadError(f"'{path}' has no {CONFIG_NAME}, so it is not a model folder; {_FIX}")
    return path


def read_config(folder: str | os.PathLike) -> dict:
    """The ``config.json`` of a model folder, as a dict."""
    config_path = Path(folder) / CONFIG_NAME
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"cannot read '{config_path}': {' '.join(str(error).split())}; {_FIX}") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"'{config_path}' does not hold a JSON object; {_FIX}")
    return config


def model_class(config: dict, where: str = "config"):
    """The model class a config's ``_class_name`` names (IVVAE if that class is not available)."""
    from . import models

    name = config.get("_class_name")
    if name is None:
        return models.IVVAE  # hand-written config: assume the default family member
    if name not in MODEL_CLASSES:
        raise ModelLoadError(f"{where} is for class '{name}', not an IV-VAE model ({', '.join(MODEL_CLASSES)}); {_FIX}")
    return getattr(models, name, models.IVVAE)


def check_model_source(name_or_path: str | os.PathLike) -> Path:
    """The folder :func:`load_model` would load, checked as it checks it (config, weights file
    names, shapes and dtypes, read from the file's header) without loading any values.

    Raises:
        ModelNotFoundError, ModelLoadError: as :func:`load_model`.
    """
    folder = resolve_model_path(name_or_path)
    check_model_folder(folder, model_class(read_config(folder), f"'{folder / CONFIG_NAME}'"))
    return folder


def load_model(name_or_path: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    """Load a model folder or bundled model, in eval mode, on ``device`` (and ``dtype`` if given).

    The config and the weights file's tensor names, shapes and dtypes are checked before loading
    (diffusers would leave a missing tensor on the meta device, and cast integer tensors), the
    loaded values after (NaN or infinite weights would decode garbage without an error).

    Raises:
        ModelNotFoundError, ModelLoadError: see :func:`resolve_model_path`; also a config for
            another class or with invalid values, a missing, empty or truncated weights file,
            weights that do not fit the config, or weights that are not finite.
    """
    device, dtype = check_device(device), check_dtype(dtype)  # before the (slow) load, not after it
    folder = resolve_model_path(name_or_path)
    cls = model_class(read_config(folder), f"'{folder / CONFIG_NAME}'")
    try:  # the family's from_pretrained checks the folder before and the values after loading
        model = cls.from_pretrained(folder, torch_dtype=dtype) if dtype is not None else cls.from_pretrained(folder)
    except ModelLoadError:
        raise
    except (OSError, ValueError, RuntimeError, TypeError, KeyError) as error:
        first = " ".join(str(error).split()).split(" If you want to instead overwrite")[0]  # not diffusers' kwargs advice
        if "expected shape" in first:
            first += " (the weights are for another config.json: another width or latent size?)"
        if len(first) > 300:
            first = first[:300] + "..."
        raise ModelLoadError(f"cannot load model from '{folder}': {type(error).__name__}: {first}") from None
    model.name_or_path = os.fspath(name_or_path)
    return model.to(device).eval()


#: dtype names ``load_model(dtype=...)`` and ``from_pretrained(torch_dtype=...)`` accept besides torch dtypes.
_DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "float": "float32", "float16": "float16", "fp16": "float16",
                "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16", "float64": "float64", "double": "float64"}


def check_dtype(dtype: object, name: str = "dtype") -> torch.dtype | None:
    """``dtype`` as a floating-point ``torch.dtype`` (a name such as ``"bf16"`` is looked up); None stays None.

    diffusers takes any other value silently as float32, which would load another dtype than the
    one asked for."""
    import torch

    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in _DTYPE_NAMES:
        return getattr(torch, _DTYPE_NAMES[dtype.lower().removeprefix("torch.")])
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    raise ValueError(f"{name}={dtype!r}: expected a floating-point torch dtype (torch.float32, torch.float16, torch.bfloat16) "
                     f"or one of the names {', '.join(sorted(_DTYPE_NAMES))}")


def check_device(device: object) -> torch.device:
    """``device`` as a ``torch.device`` that this machine has, named in a one-line error otherwise
    (torch would fail only after the model is loaded, with an AssertionError for missing CUDA)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device={device!r} is not a device: use 'cpu', 'cuda' or 'cuda:N'") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available on this machine (or this torch build); use device='cpu'")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"device={device!r}: this machine has {count} CUDA device(s) (cuda:0 .. cuda:{count - 1})")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r}: MPS is not available on this machine; use device='cpu'")
    return parsed


def check_pretrained_source(source: str | os.PathLike) -> None:
    """For ``from_pretrained``: a file, or a missing path that cannot be a Hub repo id (absolute,
    relative with ``./`` or ``~``, or with several ``/``), is refused as :func:`load_model` refuses
    it; diffusers would call a file an invalid JSON config and try the Hub for a missing folder."""
    if not isinstance(source, (str, os.PathLike)):
        raise ModelNotFoundError(f"expected a model folder or a bundled model's name, got {type(source).__name__}; {_FIX}")
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.is_file():
        _check_folder(path)
    repo_id = isinstance(source, str) and not text.startswith((".", "~", os.sep, "/")) and text.count("/") <= 1 and "\\" not in text
    if not path.exists() and not repo_id:
        raise ModelNotFoundError(f"model folder '{path}' not found; {_FIX}")


def check_model_folder(folder: Path, cls: type) -> Path:
    """Check a model folder before ``cls`` loads it: its config names ``cls`` and holds valid values,
    and its weights file holds exactly the config's tensors, in its shapes, as floating point
    numbers (read from the file's header, no values loaded). Returns the weights file.

    Raises:
        ModelLoadError: naming the file, the field or the tensors at fault.
    """
    config_path = folder / CONFIG_NAME
    config = read_config(folder)
    named = model_class(config, f"'{config_path}'")
    if config.get("_class_name") is not None and named is not cls:
        raise ModelLoadError(f"'{config_path}' is for {named.__name__}, not {cls.__name__}: load it with "
                             f"{named.__name__}.from_pretrained or ivvae.load_model")
    weights = _weights_file(folder)
    _check_layout(weights, _expected_tensors(cls, config, config_path), _read_layout(weights))
    return weights


def _weights_file(folder: Path) -> Path:
    """The weights file diffusers will read: safetensors first, else the pickled ``.bin``."""
    for name in WEIGHTS_NAMES:
        if (folder / name).is_file():
            return folder / name
    if (folder / "trainer_state.json").is_file() and (folder / "ema" / "config.json").is_file():  # a training checkpoint
        raise ModelLoadError(f"'{folder}' is a training checkpoint, not a model folder: load its EMA weights from "
                             f"'{folder / 'ema'}', or export it with `ivvae train CONFIG --resume {folder} --export-only`")
    raise ModelLoadError(f"'{folder}' has a config but no weights file ({WEIGHTS_NAMES[0]}); {_FIX}")


def _expected_tensors(cls: type, config: dict, config_path: Path) -> dict[str, torch.Tensor]:
    """The state dict ``config`` describes, built on the meta device (no memory, no random init);
    building it also checks the config's values, so a bad one is named before any weight is read."""
    import inspect

    import torch

    accepted = inspect.signature(cls.__init__).parameters
    unknown = sorted(key for key in config if key not in accepted and not key.startswith("_"))
    if unknown:  # diffusers would ignore them: a misspelt scaling_factor would silently be 1.0
        known = ", ".join(key for key in accepted if key != "self")
        raise ModelLoadError(f"'{config_path}' has field(s) {cls.__name__} does not take: {', '.join(unknown)} (misspelt? "
                             f"its fields: {known}); correct or remove them")
    arguments = {key: value for key, value in config.items() if key in accepted and key != "self"}
    try:
        with torch.device("meta"):
            return cls(**arguments).state_dict()
    except (ValueError, TypeError) as error:
        raise ModelLoadError(f"invalid '{config_path}': {' '.join(str(error).split())}; correct that field "
                             "(or re-export the model)") from None


class _NotTorchFile(ValueError):
    """A weights file that neither torch nor safetensors wrote (a web page saved as the file, random bytes)."""


def _read_layout(weights: Path) -> dict[str, tuple[tuple[int, ...], str, bool]]:
    """Name -> (shape, dtype name, is floating point) of each tensor in ``weights``, read without
    loading the values (the safetensors header; a memory map of a ``.bin``)."""
    if weights.stat().st_size == 0:
        raise ModelLoadError(f"'{weights}' is empty (0 bytes): {_REEXPORT}")
    try:
        return _safetensors_layout(weights) if weights.suffix == ".safetensors" else _pickle_layout(weights)
    except _NotTorchFile:  # torch's reason would be advice to unpickle it unsafely or to re-save it
        raise ModelLoadError(f"'{weights}' is not a torch weights file (neither a torch.save zip archive nor a pickle): "
                             f"{_REEXPORT}") from None
    except Exception as error:  # safetensors' and the unpickler's errors: the file, not the reader, is at fault
        reason = " ".join(str(error).split("\n\n")[0].split())[:200].split(" Please ")[0]  # not torch's advice to re-save
        raise ModelLoadError(f"'{weights}' is truncated or not a {weights.suffix[1:]} weights file ({reason}): {_REEXPORT}") from None


def _safetensors_layout(weights: Path) -> dict[str, tuple[tuple[int, ...], str, bool]]:
    from safetensors import safe_open

    layout = {}
    with safe_open(weights, "pt") as file:
        for key in file.keys():
            tensor = file.get_slice(key)
            dtype = tensor.get_dtype()
            layout[key] = (tuple(tensor.get_shape()), dtype, dtype.startswith(("F", "BF")))
    return layout


def _pickle_layout(weights: Path) -> dict[str, tuple[tuple[int, ...], str, bool]]:
    import torch

    state = _load_pickled(weights)
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError("it does not hold a state dict of tensors")
    return {key: (tuple(value.shape), str(value.dtype).removeprefix("torch."), value.is_floating_point()) for key, value in state.items()}


def _load_pickled(weights: Path):
    """``torch.load`` of a ``.bin``, memory-mapped (no copy of a large file) where torch can: mmap reads only
    the zip format torch.save writes since 1.6, and refuses the legacy pickle format, which loads whole."""
    import torch

    try:
        return torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap can only be used" not in str(error):
            raise
    with open(weights, "rb") as file:
        if file.read(1) != b"\x80":  # a pickle (the legacy format) starts with its protocol opcode
            raise _NotTorchFile(str(weights))
    return torch.load(weights, map_location="cpu", weights_only=True)


def first_few(names: list[str], shown: int = _SHOWN) -> str:
    """The first few of ``names`` and how many there are, for a one-line message."""
    text = ", ".join(names[:shown])
    return f"{text}, ... ({len(names)} in all)" if len(names) > shown else text


def _check_layout(weights: Path, expected: dict[str, torch.Tensor], found: dict[str, tuple[tuple[int, ...], str, bool]]) -> None:
    """The file must hold exactly the config's tensors, in its shapes, as floating point numbers."""
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    reshaped = [f"{key} {found[key][0]} (expected {tuple(expected[key].shape)})"
                for key in expected if key in found and found[key][0] != tuple(expected[key].shape)]
    where = f"cannot load model from '{weights.parent}': '{weights.name}'"
    differences = [f"{label} {len(keys)} {kind}tensor(s): {first_few(keys, shown)}"  # shapes are long: show fewer
                   for label, kind, keys, shown in (("lacks", "", missing, _SHOWN), ("has", "unexpected ", unexpected, _SHOWN),
                                                    ("has", "wrongly shaped ", reshaped, 2)) if keys]
    if differences:
        why = ("the weights are for another config.json (another width or latent size?)" if reshaped and not missing + unexpected
               else "the weights file is incomplete or for another model version")
        raise ModelLoadError(f"{where} {'; '.join(differences)}: {why}; {_REEXPORT}")
    integers = [f"{key} ({found[key][1]})" for key in expected if expected[key].is_floating_point() and not found[key][2]]
    if integers:
        raise ModelLoadError(f"{where} holds {len(integers)} tensor(s) that are not floating point: {first_few(integers)}; "
                             f"weights must be float32, float16 or bfloat16: {_REEXPORT}")


def nonfinite_tensors(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity, in one pass without copies.

    A tensor's sum is non-finite iff it holds a NaN or an infinity: sums of finite weights stay far
    below float32's 3e38 (half-precision tensors are summed in float32, which needs no copy).
    """
    import torch

    floats = {key: tensor for key, tensor in tensors.items() if tensor.is_floating_point() and tensor.numel()}
    if not floats:
        return []
    sums = torch.stack([tensor.sum(dtype=torch.promote_types(tensor.dtype, torch.float32)).double() for tensor in floats.values()])
    return [key for key, finite in zip(floats, sums.isfinite().tolist(), strict=True) if not finite]


def check_loaded_model(model: torch.nn.Module, weights: Path) -> None:
    """After loading from ``weights``: every tensor was loaded (none left on the meta device) and is finite."""
    state = model.state_dict()
    where = f"cannot load model from '{weights.parent}': '{weights.name}'"
    unloaded = [key for key, tensor in state.items() if tensor.is_meta]
    if unloaded:
        raise ModelLoadError(f"{where} lacks {len(unloaded)} tensor(s): {first_few(unloaded)}: the weights file is incomplete "
                             f"or for another model version; {_REEXPORT}")
    broken = nonfinite_tensors(state)
    if broken:
        raise ModelLoadError(f"{where} holds NaN or infinite values in {len(broken)} tensor(s): {first_few(broken)}; "
                             f"the weights are broken (a diverged training run, or values too large for the dtype?): {_REEXPORT}")
