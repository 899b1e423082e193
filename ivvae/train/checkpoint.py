"""Checkpoint folders: atomic writes, the ``latest`` pointer, resume lookup, pruning, export.

Layout of a run's output dir::

    <output_dir>/checkpoints/
        step_00001000/                  a complete checkpoint (only complete ones bear this name)
            model.safetensors           trained weights (accelerate ``save_state``; keys ``vae.*``)
            model_1.safetensors         discriminator (GAN runs)
            optimizer.bin, optimizer_1.bin, scaler.pt (fp16)
            random_states_<rank>.pkl    python / numpy / torch (/ cuda) RNG of every process
            config.json                 the model's config (class + constructor arguments)
            ema/                        EMA weights as a ``from_pretrained`` folder
            schedulers.pt               LR scheduler states
            trainer_state.json          step, epoch, data-loader position, history; written last
        .tmp-step_00002000/             a checkpoint being written (ignored, removed later)
        latest                          name of the newest complete checkpoint (atomic replace)
        abandoned/step_00003000/        a checkpoint of an abandoned branch (see below; never read or pruned)

A checkpoint is written into ``.tmp-<name>``, its files are flushed to disk, and the folder is
renamed to ``<name>`` (atomic on POSIX); ``latest`` is then replaced atomically. A process killed
at any moment leaves either the previous state or the new one, never a half-written checkpoint
under a valid name. :func:`latest_checkpoint` trusts ``latest`` only if it names a complete
checkpoint, else takes the highest complete ``step_*`` folder; it also prefers a complete folder
newer than the pointer (a process killed between the rename and the pointer's update).

Branches: a run resumed from a checkpoint older than others of its folder (to retry a stretch
with other settings) starts a new branch; the newer checkpoints belong to the abandoned one.
:func:`set_aside_newer` moves them into ``abandoned/`` (nothing is deleted), so that the lookup
above and the pruning only ever see the current branch.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .._files import write_pretrained

__all__ = [
    "ABANDONED_DIR",
    "CHECKPOINTS_DIR",
    "DTYPES",
    "EXPORT_RECORD",
    "LATEST_FILE",
    "STATE_FILE",
    "TMP_PREFIX",
    "CheckpointDamagedError",
    "CheckpointMismatchError",
    "check_checkpoint_shapes",
    "checkpoint_name",
    "checkpoint_step",
    "export_checkpoint",
    "export_files_not_written",
    "export_model",
    "export_run_id",
    "exported_step",
    "finalize_dir",
    "is_complete",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint_model",
    "prune_checkpoints",
    "reading_checkpoint",
    "resolve_pretrained",
    "resolve_resume",
    "set_aside_newer",
    "write_json_atomic",
    "write_latest",
]

CHECKPOINTS_DIR = "checkpoints"
ABANDONED_DIR = "abandoned"  # under CHECKPOINTS_DIR: checkpoints of abandoned branches
LATEST_FILE = "latest"
STATE_FILE = "trainer_state.json"
TMP_PREFIX = ".tmp-"
MODEL_WEIGHTS = "model.safetensors"
MODEL_CONFIG = "config.json"
#: In an export folder: the training step its weights come from (``--export-only`` compares it before replacing the folder),
#: the id of the run that wrote it and the files it wrote (a run replaces only its own export, and only if nothing was added).
EXPORT_RECORD = "export_step.json"
EMA_DIR = "ema"
WRAPPER_PREFIX = "vae."  # the trainer registers the model inside a wrapper module with this attribute

_NAME = re.compile(r"^step_(\d+)$")

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# --------------------------------------------------------------------------------------------
# Names and lookup
# --------------------------------------------------------------------------------------------

def checkpoint_name(step: int) -> str:
    return f"step_{int(step):08d}"


def checkpoint_step(path: str | os.PathLike) -> int | None:
    match = _NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def is_complete(path: str | os.PathLike) -> bool:
    """A finished checkpoint: a ``step_N`` folder holding ``trainer_state.json``."""
    path = Path(path)
    return checkpoint_step(path) is not None and path.is_dir() and (path / STATE_FILE).is_file()


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under ``root`` (a ``checkpoints`` folder), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if is_complete(p)]
    return sorted(found, key=lambda p: checkpoint_step(p))


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint under ``root``: the ``latest`` pointer if valid, else a scan."""
    root = Path(root)
    pointer = root / LATEST_FILE
    if pointer.is_file():
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except OSError:
            name = ""
        if name and "/" not in name and is_complete(root / name):
            candidates = list_checkpoints(root)
            # a newer complete one can exist if the process died between rename and pointer update
            if candidates and checkpoint_step(candidates[-1]) > checkpoint_step(root / name):
                return candidates[-1]
            return root / name
    found = list_checkpoints(root)
    return found[-1] if found else None


def set_aside_newer(root: str | os.PathLike, checkpoint: str | os.PathLike) -> list[Path]:
    """Move the complete checkpoints of ``root`` newer than ``checkpoint`` (the one a run resumes
    from) into ``root/abandoned/``: they belong to an abandoned branch. Returns where they went.

    ``latest`` is pointed at ``checkpoint`` when it lives in ``root``.
    """
    root, checkpoint = Path(root), Path(checkpoint)
    step = checkpoint_step(checkpoint)
    newer = [p for p in list_checkpoints(root) if step is not None and checkpoint_step(p) > step]
    moved: list[Path] = []
    for path in reversed(newer):  # newest first
        target = root / ABANDONED_DIR / path.name
        n = 1
        while target.exists():  # a branch abandoned before at the same step
            n += 1
            target = root / ABANDONED_DIR / f"{path.name}.{n}"
        target.parent.mkdir(exist_ok=True)
        os.rename(path, target)
        moved.append(target)
    if moved:
        _fsync_path(root)
    if checkpoint.parent.resolve() == root.resolve() and is_complete(checkpoint):
        write_latest(root, checkpoint.name)
    return moved


def resolve_resume(resume: str | os.PathLike | None, output_dir: str | os.PathLike) -> Path | None:
    """The checkpoint to resume from.

    ``None``: none. ``"auto"``: the latest complete checkpoint of ``output_dir`` (``None`` if
    there is none yet: a fresh start). A path: a checkpoint folder, a ``checkpoints`` folder or
    a run's output dir (its latest checkpoint).

    Raises:
        FileNotFoundError: a path with no complete checkpoint.
    """
    if resume is None:
        return None
    if str(resume) == "auto":
        return latest_checkpoint(Path(output_dir) / CHECKPOINTS_DIR)
    path = Path(resume).expanduser()
    if is_complete(path):
        return path
    for root in (path / CHECKPOINTS_DIR, path):
        found = latest_checkpoint(root)
        if found is not None:
            return found
    if path.is_dir() and checkpoint_step(path) is not None:
        raise FileNotFoundError(f"checkpoint '{path}' is incomplete (no {STATE_FILE}); resume from an earlier one or use --resume auto")
    raise FileNotFoundError(f"no complete checkpoint at '{path}' (expected a checkpoint folder step_N, "
                            f"a '{CHECKPOINTS_DIR}' folder or a run's output dir)")


# --------------------------------------------------------------------------------------------
# Damaged and mismatched checkpoints
# --------------------------------------------------------------------------------------------

#: What the checkpoint is read for; it decides the advice when it cannot be read.
Use = Literal["resume", "export", "load"]


class CheckpointDamagedError(ValueError):
    """A file of a trainer checkpoint cannot be read; the message names it and what to do instead."""


class CheckpointMismatchError(ValueError):
    """A checkpoint holds a model of another shape than the one the config builds."""


def _earlier_checkpoint(checkpoint: Path) -> Path | None:
    """The newest complete checkpoint older than ``checkpoint`` in the same folder."""
    step = checkpoint_step(checkpoint)
    older = [p for p in list_checkpoints(checkpoint.parent) if step is not None and checkpoint_step(p) < step]
    return older[-1] if older else None


def _run_config(checkpoint: Path) -> str:
    """The config a checkpoint was written with: ``<run>/config.yaml`` of ``<run>/checkpoints/step_N``."""
    if checkpoint.parent.name == CHECKPOINTS_DIR:
        return f"{checkpoint.parent.parent / 'config.yaml'}"
    return "its run's config.yaml"


def _damaged_advice(checkpoint: Path, file: Path, use: Use) -> str:
    earlier = _earlier_checkpoint(checkpoint)
    if use == "export" and file.parent.name == EMA_DIR:
        raw = "export its raw weights with --set export.use_ema=false"
        return f"{raw}, or an earlier checkpoint with --export-only --resume {earlier}" if earlier is not None else raw
    if use == "resume":
        if earlier is None:
            return "it has no earlier checkpoint: start over with another --output-dir (or delete its checkpoints folder)"
        return (f"move {checkpoint.name} aside and resume from an earlier checkpoint with --resume {earlier}, "
                "or start over with another --output-dir")
    if use == "export":
        if earlier is None:
            return "it has no earlier checkpoint to export: train again (or use the run's export folder, if it has one)"
        return f"export an earlier checkpoint with --export-only --resume {earlier}"
    return f"use an earlier checkpoint ({earlier})" if earlier is not None else "use another checkpoint or model folder"


def _reason(error: BaseException) -> str:
    from ivvae import hub

    text = " ".join(str(error).split())
    for name in ("_FIX", "_REEXPORT"):  # ivvae.hub's advice (another model folder) is for other commands
        advice = " ".join(str(getattr(hub, name, "")).split())
        for separator in ("; ", ": ", " ") if advice else ():
            text = text.replace(f"{separator}{advice}", "")
    return f"{type(error).__name__}: {text[:200] + '...' if len(text) > 200 else text}"


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or isinstance(error, getattr(torch, "OutOfMemoryError", MemoryError))


@contextmanager
def reading_checkpoint(checkpoint: str | os.PathLike, file: str | os.PathLike, use: Use = "resume") -> Iterator[None]:
    """Report any failure to read ``file`` of ``checkpoint`` as :class:`CheckpointDamagedError` naming the file.

    A checkpoint is written atomically, so a file that does not load was damaged afterwards
    (disk, copy, hand edit): the advice is to take an earlier checkpoint.
    """
    try:
        yield
    except (CheckpointDamagedError, CheckpointMismatchError):
        raise
    except Exception as error:
        if _is_out_of_memory(error):
            raise
        checkpoint, file = Path(checkpoint), Path(file)
        if use == "resume" and isinstance(error, RuntimeError) and "size mismatch" in str(error):  # layouts not checked before
            detail = next(line.strip() for line in str(error).splitlines() if "size mismatch" in line)
            raise CheckpointMismatchError(_mismatch_message(checkpoint, detail)) from error
        what = f"checkpoint '{file}' has a damaged file" if file == checkpoint else f"checkpoint file '{file}' is damaged"
        raise CheckpointDamagedError(f"{what} ({_reason(error)}); {_damaged_advice(checkpoint, file, use)}") from error


def _saved_shapes(checkpoint: Path, file: Path, use: Use = "resume") -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a safetensors file, from its header (no tensor is read)."""
    from safetensors import safe_open

    with reading_checkpoint(checkpoint, file, use), safe_open(str(file), framework="pt") as f:
        return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}


def _shape_difference(saved: Mapping[str, tuple[int, ...]], built: Mapping[str, tuple[int, ...]]) -> str | None:
    """The first difference between two key -> shape maps, in words; None if they agree."""
    for key, shape in built.items():
        if key in saved and saved[key] != shape:
            changed = sum(1 for k in built if k in saved and saved[k] != built[k])
            return f"{changed} tensor(s) differ, e.g. {key}: checkpoint {saved[key]} vs config {shape}"
    missing = [k for k in built if k not in saved]
    extra = [k for k in saved if k not in built]
    if missing or extra:
        example = f"{missing[0]} is not in the checkpoint" if missing else f"the checkpoint's {extra[0]} is not in the model"
        return f"{len(missing)} tensor(s) missing and {len(extra)} unexpected, e.g. {example}"
    return None


def check_checkpoint_shapes(checkpoint: str | os.PathLike, models: Mapping[str, nn.Module]) -> None:
    """Refuse a checkpoint whose weights do not fit the models the config built, before loading it.

    Args:
        checkpoint: a checkpoint folder.
        models: weights file name (``model.safetensors``, ``model_1.safetensors``) -> the bare
            module whose weights it holds (without the trainer's wrapper or DDP).

    Raises:
        CheckpointMismatchError: another shape (e.g. another ``latent_channels``).
        CheckpointDamagedError: a weights file that cannot be read.
    """
    checkpoint = Path(checkpoint)
    for name, module in models.items():
        file = checkpoint / name
        if not file.is_file():
            continue  # older layouts (.bin): accelerate's own load reports what does not fit
        saved = _strip_prefix(_saved_shapes(checkpoint, file))
        built = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        difference = _shape_difference(saved, built)
        if difference is not None:
            raise CheckpointMismatchError(_mismatch_message(checkpoint, difference))


def _mismatch_message(checkpoint: Path, difference: str) -> str:
    return (f"cannot resume from '{checkpoint}': it holds a model of another shape ({difference}); resume with the "
            f"config it was made with ({_run_config(checkpoint)}) or start a new run (another --output-dir)")


# --------------------------------------------------------------------------------------------
# Atomic writing
# --------------------------------------------------------------------------------------------

def _fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            _fsync_path(Path(dirpath) / name)
        _fsync_path(Path(dirpath))


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_latest(root: str | os.PathLike, name: str) -> None:
    """Point ``root/latest`` at checkpoint ``name`` (atomic replace)."""
    root = Path(root)
    tmp = root / f"{TMP_PREFIX}{LATEST_FILE}.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / LATEST_FILE)
    _fsync_path(root)


def finalize_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Flush ``tmp`` to disk and rename it to ``final`` (replacing an existing ``final``)."""
    tmp, final = Path(tmp), Path(final)
    _fsync_tree(tmp)
    if final.exists():
        trash = final.with_name(f"{TMP_PREFIX}old-{final.name}.{os.getpid()}")
        os.rename(final, trash)
        os.rename(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _fsync_path(final.parent)
    return final


def prune_checkpoints(root: str | os.PathLike, keep_last: int, keep: tuple[Path, ...] = ()) -> list[Path]:
    """Remove all but the newest ``keep_last`` complete checkpoints (0: keep all) and stale temp dirs.

    Checkpoints in ``keep`` are never removed. Returns what was removed.
    """
    root = Path(root)
    removed: list[Path] = []
    keep_resolved = {Path(p).resolve() for p in keep}
    if keep_last > 0:
        for path in list_checkpoints(root)[:-keep_last]:
            if path.resolve() not in keep_resolved:
                # rename first: a process killed while deleting leaves a temp dir, not a checkpoint
                # that looks complete but lacks files
                doomed = root / f"{TMP_PREFIX}del-{path.name}"
                shutil.rmtree(doomed, ignore_errors=True)
                os.rename(path, doomed)
                shutil.rmtree(doomed, ignore_errors=True)
                removed.append(path)
    for path in root.glob(f"{TMP_PREFIX}*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


# --------------------------------------------------------------------------------------------
# Models from checkpoints; export
# --------------------------------------------------------------------------------------------

def _strip_prefix(state: dict[str, Any]) -> dict[str, Any]:
    """Remove the DDP (``module.``) and trainer-wrapper (``vae.``) key prefixes."""
    for prefix in ("module.", WRAPPER_PREFIX):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _check_readable(checkpoint: Path, config_file: Path, weights_file: Path, use: Use) -> None:
    """Parse a model's config.json and its weights' header, so that a damaged one is named as such."""
    with reading_checkpoint(checkpoint, config_file, use):
        if not isinstance(json.loads(config_file.read_text(encoding="utf-8")), dict):
            raise ValueError("a JSON object was expected")
    if weights_file.is_file():
        _saved_shapes(checkpoint, weights_file, use)


def load_checkpoint_model(checkpoint: str | os.PathLike, weights: str = "auto", use: Use = "load") -> nn.Module:
    """The model of a trainer checkpoint (CPU, eval mode): its ``ema`` or raw ``model`` weights.

    ``weights="auto"`` takes the EMA weights when the checkpoint has them. ``use`` (what the
    caller does with it) picks the advice of a :class:`CheckpointDamagedError`.
    """
    from safetensors.torch import load_file

    from ivvae.hub import WEIGHTS_NAMES, load_model, model_class, read_config

    checkpoint = Path(checkpoint)
    if weights not in ("auto", "ema", "model"):
        raise ValueError(f"weights must be 'auto', 'ema' or 'model', got {weights!r}")
    ema_dir = checkpoint / EMA_DIR
    if weights in ("auto", "ema") and (ema_dir / MODEL_CONFIG).is_file():
        _check_readable(checkpoint, ema_dir / MODEL_CONFIG, ema_dir / WEIGHTS_NAMES[0], use)
        with reading_checkpoint(checkpoint, ema_dir / WEIGHTS_NAMES[0], use):
            return load_model(ema_dir)
    if weights == "ema":
        raise FileNotFoundError(f"checkpoint '{checkpoint}' has no EMA weights ({ema_dir}); use weights 'model'")
    weights_file = checkpoint / MODEL_WEIGHTS
    if not weights_file.is_file():
        raise FileNotFoundError(f"checkpoint '{checkpoint}' has no {MODEL_WEIGHTS}")
    _check_readable(checkpoint, checkpoint / MODEL_CONFIG, weights_file, use)
    with reading_checkpoint(checkpoint, checkpoint / MODEL_CONFIG, use):
        config = read_config(checkpoint)
        cls = model_class(config, f"'{checkpoint / MODEL_CONFIG}'")
        model = cls.from_config({k: v for k, v in config.items()})
    with reading_checkpoint(checkpoint, weights_file, use):
        model.load_state_dict(_strip_prefix(load_file(str(weights_file))), strict=True)
    return model.eval()


def resolve_pretrained(path: str | os.PathLike, weights: str = "auto") -> nn.Module:
    """Load a model from a ``from_pretrained`` folder, a trainer checkpoint or a run's output dir."""
    from ivvae.hub import load_model

    p = Path(path).expanduser()
    if is_complete(p):
        return load_checkpoint_model(p, weights)
    if (p / CHECKPOINTS_DIR).is_dir() or latest_checkpoint(p) is not None:
        found = latest_checkpoint(p / CHECKPOINTS_DIR) or latest_checkpoint(p)
        if found is not None:
            return load_checkpoint_model(found, weights)
    return load_model(path)


def export_model(model: nn.Module, out_dir: str | os.PathLike, dtype: str = "float32", step: int | None = None,
                 run_id: str | None = None) -> Path:
    """``save_pretrained`` (safetensors) of ``model`` cast to ``dtype``, written atomically, with the
    training ``step`` of its weights, the ``run_id`` of the run (if given) and the files written in
    :data:`EXPORT_RECORD`. An existing ``out_dir`` is replaced: callers check first that it may be."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f"{TMP_PREFIX}{out_dir.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    target = copy.deepcopy(model)
    for tensor in list(target.parameters()) + list(target.buffers()):
        # (cast tensor by tensor: ModelMixin.to(dtype) warns about fp32-only modules, there are none)
        # channels-last weights are not contiguous; safetensors needs them to be
        data = tensor.data.to(DTYPES[dtype]) if tensor.is_floating_point() else tensor.data
        tensor.data = data.contiguous()
    write_pretrained(target, tmp)
    if step is not None or run_id is not None:
        record: dict[str, Any] = {"step": None if step is None else int(step), "run_id": run_id}
        record["files"] = sorted({*os.listdir(tmp), EXPORT_RECORD})
        (tmp / EXPORT_RECORD).write_text(json.dumps(record) + "\n")
    return finalize_dir(tmp, out_dir)


def _export_record(folder: str | os.PathLike) -> dict[str, Any] | None:
    try:
        record = json.loads((Path(folder) / EXPORT_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no record (an older export, or not an export), or a damaged one
        return None
    return record if isinstance(record, dict) else None


def exported_step(folder: str | os.PathLike) -> int | None:
    """The training step of the weights in export ``folder`` (its :data:`EXPORT_RECORD`); None if unknown."""
    step = (_export_record(folder) or {}).get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def export_run_id(folder: str | os.PathLike) -> str | None:
    """The id of the run that wrote export ``folder``; None if it names none (an export of an older version)."""
    run_id = (_export_record(folder) or {}).get("run_id")
    return run_id if isinstance(run_id, str) and run_id else None


def export_files_not_written(folder: str | os.PathLike) -> list[str]:
    """Entries of export ``folder`` its export did not write (someone added them); [] if its record lists none."""
    files = (_export_record(folder) or {}).get("files")
    if not isinstance(files, list):
        return []
    return sorted(set(os.listdir(folder)) - set(files))


def _checkpoint_run_id(checkpoint: Path) -> str | None:
    try:
        run_id = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return run_id if isinstance(run_id, str) else None


def export_checkpoint(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, dtype: str = "float32",
                      weights: str = "auto") -> Path:
    """Export a trainer checkpoint (or a run's latest) as a ``from_pretrained`` folder."""
    path = resolve_resume(checkpoint, checkpoint)
    return export_model(load_checkpoint_model(path, weights, use="export"), out_dir, dtype, step=checkpoint_step(path),
                        run_id=_checkpoint_run_id(path))
