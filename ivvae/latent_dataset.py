"""Latents of a whole video data set, for training a latent diffusion model on them.

:func:`encode_dataset` (``ivvae encode-dataset``) encodes the clips a :class:`~ivvae.eval.runner.DatasetSpec`
chooses (``--frames`` consecutive frames, up to ``--clips-per-video`` clips per video, optional
resize and centre crop) to their posterior means and writes them to a folder;
:class:`LatentDataset` reads it back as a ``torch.utils.data.Dataset``. The folder holds

* ``dataset.json``: what was encoded and how (model name, class, config and weights hashes,
  latent normalisation, clip selection, dtypes); a later run into the same folder must match it.
* ``shard-00000.safetensors``, ...: the latents, one tensor ``(Z, T', H', W')`` per clip named by
  its id (``"00000000"``), in the storage dtype (float32 by default: raw latents bit for bit).
* ``clips.jsonl``: one line per clip (id, shard, source path, first frame, size, fps, shape).
* ``skipped.jsonl``: videos that could not be read or are too short, with the reason.

A shard is written (to a temporary name, then renamed) before its clips are listed in
``clips.jsonl``, and a video's clips always share a shard, so an interrupted run loses at most the
clips of its unwritten shard: running the same command again skips the videos already listed in
``clips.jsonl`` or ``skipped.jsonl`` and encodes the rest (delete ``skipped.jsonl`` to retry those).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._checks import is_whole_number
from ._files import path_list, write_atomically, write_error

__all__ = ["LatentDataset", "LatentDatasetError", "STORAGE_DTYPES", "SameShapeBatchSampler", "encode_dataset"]

FORMAT = "ivvae-latent-dataset"
FORMAT_VERSION = 1
DATASET_FILE = "dataset.json"
CLIPS_FILE = "clips.jsonl"
SKIPPED_FILE = "skipped.jsonl"
SHARD_PREFIX = "shard-"

#: Storage dtypes of the latents (float32 keeps raw latents bit for bit; the others halve the size).
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

#: What dataset.json records of the encoding weights (:func:`ivvae.pipeline.weights_identity`).
_WEIGHTS_KEYS = ("weights_hash", "weights_dtype", "weights_hash_float16", "weights_hash_bfloat16")

#: dataset.json keys a resumed run may change: they do not change the latents (the weights' dtype and
#: rounded hashes, added within format 1, are checked through the float32 ``weights_hash``).
_FREE_KEYS = ("format", "model", *_WEIGHTS_KEYS[1:])


class LatentDatasetError(ValueError):
    """A folder that is not a latent data set, or one made with other settings."""


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}.safetensors"


# --------------------------------------------------------------------------------------------
# The folder's index
# --------------------------------------------------------------------------------------------
#: Keys every record must have (what reading, resuming and decoding use).
CLIP_KEYS = ("id", "shard", "key", "path", "video_clips", "frames", "size", "fps")
SKIPPED_KEYS = ("path", "reason")

#: How to repair each index file when a line of it is damaged.
_REPAIR = {
    CLIPS_FILE: "re-run `ivvae encode-dataset` with --overwrite, or into a new folder",
    SKIPPED_FILE: f"delete {SKIPPED_FILE} (its videos are then tried again)",
}


def _parse_record(line: str, keys: Sequence[str]) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and all(key in record for key in keys) else None


def _read_jsonl(path: Path, keys: Sequence[str] = ()) -> tuple[list[dict[str, Any]], bool]:
    """The records of a JSON-lines file, and whether its last line was cut short (an interrupted append).

    Only an unterminated last line can come from an interrupted append (each append is one write of
    whole lines); any other line that is not a JSON record with ``keys`` means a damaged file.
    """
    if not path.is_file():
        return [], False
    lines = path.read_text(errors="replace").split("\n")  # the piece after the last newline is "" unless cut short
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = _parse_record(line, keys)
        if record is None:
            if number == len(lines):
                return records, True
            raise LatentDatasetError(f"'{path}' line {number} is not a JSON record with {', '.join(keys) or 'fields'}: the file is "
                                     f"damaged; {_REPAIR.get(path.name, 'repair or delete it')}")
        records.append(record)
    return records, False


def complete_clip_records(folder: Path) -> list[dict[str, Any]]:
    """The clips of ``clips.jsonl`` whose video is complete (every clip listed), in file order."""
    return _complete(_read_jsonl(folder / CLIPS_FILE, CLIP_KEYS)[0])


def _complete(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of videos with every clip listed, each video's first complete encoding only.

    A video encoded twice (listed twice by an older ivvae) keeps its first clips instead of being
    taken for an incomplete video and dropped; a cut-short encoding is dropped as before.
    """
    kept: dict[str, list[dict[str, Any]]] = {}
    for encoding in _encodings(records):
        if len(encoding) == encoding[0]["video_clips"]:
            kept.setdefault(encoding[0]["path"], encoding)
    return [r for encoding in kept.values() for r in encoding]


def _encodings(records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """``records`` cut into the clips of one encoding of one video each.

    A video's clips are written together, into one shard, so an encoding is a run of one path's
    records in one shard, ended by a full count of clips or a repeated start (a second encoding of
    the same video may have drawn other random starts, so clips are not matched by start alone).
    """
    run: list[dict[str, Any]] = []
    for record in records:
        if run and not _continues(run, record):
            yield run
            run = []
        run.append(record)
    if run:
        yield run


def _continues(run: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    """Whether ``record`` is one more clip of the encoding ``run`` holds so far."""
    first = run[0]
    return (record["path"] == first["path"] and record["shard"] == first["shard"] and len(run) < first["video_clips"]
            and record.get("start", record["id"]) not in {r.get("start", r["id"]) for r in run})


def _read_info(folder: Path) -> dict[str, Any]:
    path = folder / DATASET_FILE
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise LatentDatasetError(f"'{folder}' is not a latent data set (no {DATASET_FILE}); make one with "
                                 "`ivvae encode-dataset`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LatentDatasetError(f"cannot read '{path}': {' '.join(str(error).split())}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise LatentDatasetError(f"'{path}' does not describe a latent data set (format is not '{FORMAT}')")
    version = info.get("version")
    if type(version) is not int or version != FORMAT_VERSION:  # True == 1 and "1" would pass or read as 1
        shown = "(none)" if version is None else json.dumps(version)
        raise LatentDatasetError(
            f"'{folder}' is a latent data set of format version {shown}; this ivvae reads version "
            f"{FORMAT_VERSION}: encode it again (`ivvae encode-dataset ... --overwrite`, or into a new folder), or read it "
            "with the ivvae that wrote it")
    return info


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The (dotted) keys whose values differ, e.g. ``clips.frames: 17 -> 9``."""
    found = []
    for key in sorted((set(old) | set(new)) - (set(_FREE_KEYS) if not prefix else set())):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}: {a!r} -> {b!r}" if len(repr(a)) + len(repr(b)) < 80 else f"{prefix}{key}")
    return found


def _absolute(path: str) -> str:
    """``path`` as an absolute path (symlinks kept: the name the user gave); ``sample:NAME`` stays a name.

    A relative path (as an older ivvae recorded) is taken relative to the current directory.
    """
    return path if _is_source_name(path) else os.path.abspath(os.path.expanduser(path))


def _is_source_name(path: str) -> bool:
    """A bundled source named, not a file: ``sample:NAME``, ``skimage``."""
    return path.startswith("sample:") or path == "skimage"


def _absolute_source(source: Any) -> Any:
    return [_absolute(s) for s in source] if isinstance(source, list) else _absolute(source)


def _video_key(path: str) -> str:
    """What identifies a video file (or source) across spellings (relative, absolute, through a symlink)."""
    return path if _is_source_name(path) else os.path.realpath(_absolute(path))


def _source_key(source: Any) -> Any:
    """A ``clips.source`` as the files it names, so ``data``, ``data/`` and ``/abs/data`` compare equal."""
    if isinstance(source, list):
        return [_source_key(s) for s in source]
    return _video_key(source) if isinstance(source, str) else source


def _source_of(info: dict[str, Any]) -> Any:
    return (info.get("clips") or {}).get("source")


def _without_source(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` less ``clips.source``, which is compared by the files it names instead."""
    clips = {k: v for k, v in (info.get("clips") or {}).items() if k != "source"}
    return {**info, "clips": clips}


def _shown_source(source: Any) -> str:
    return ", ".join(f"'{s}'" for s in source) if isinstance(source, list) else f"'{source}'"


def _check_resumable(folder: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """A run into a folder with latents must encode the same videos with the same settings."""
    if _source_key(_source_of(old)) != _source_key(_source_of(new)):
        raise LatentDatasetError(f"'{folder}' holds latents of the videos of {_shown_source(_source_of(old))}, not "
                                 f"{_shown_source(_source_of(new))}; choose another folder, or pass --overwrite to replace them")
    changed = _differences(_without_source(old), _without_source(new))
    if changed:
        raise LatentDatasetError(
            f"'{folder}' holds latents made with other settings ({'; '.join(changed)}); choose another folder, "
            "or pass --overwrite to replace them")


def _is_latent_dataset(folder: Path) -> bool:
    """Whether ``folder``'s dataset.json is one of ours (of any version): only then may --overwrite clear it."""
    try:
        info = json.loads((folder / DATASET_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(info, dict) and info.get("format") == FORMAT


def _our_files(folder: Path) -> list[Path]:
    names = {DATASET_FILE, CLIPS_FILE, SKIPPED_FILE}
    return [p for p in folder.iterdir() if p.name in names or (p.name.startswith(SHARD_PREFIX) and p.suffix == ".safetensors")]


@dataclass
class _FolderState:
    """What an earlier run into the folder finished: videos done, next clip id and shard index."""

    done: set[str] = field(default_factory=set)
    encoded_videos: set[str] = field(default_factory=set)
    next_id: int = 0
    next_shard: int = 0


def _open_folder(folder: Path, info: dict[str, Any], overwrite: bool) -> _FolderState:
    """Prepare ``folder`` for writing: new, resumed (same settings), or cleared (``overwrite``)."""
    if folder.exists() and not folder.is_dir():
        raise LatentDatasetError(f"'{folder}' is a file, not a folder; choose another output folder")
    folder.mkdir(parents=True, exist_ok=True)
    has_dataset = (folder / DATASET_FILE).exists()
    if (not has_dataset and any(folder.iterdir())) or (overwrite and has_dataset and not _is_latent_dataset(folder)):
        # --overwrite replaces a latent data set only: it never mixes shards into, or deletes from, other files
        raise LatentDatasetError(f"'{folder}' is not empty and holds no latent data set (--overwrite replaces only one); "
                                 "choose a new or empty folder")
    if overwrite:
        for path in _our_files(folder):
            path.unlink()
    elif has_dataset:
        _check_resumable(folder, _read_info(folder), info)
    _write_json(folder / DATASET_FILE, info)
    (folder / SKIPPED_FILE).touch()
    return _resume_state(folder)


def _resume_state(folder: Path) -> _FolderState:
    records, broken = _read_jsonl(folder / CLIPS_FILE, CLIP_KEYS)
    complete = _complete(records)
    if broken or len(complete) != len(records):  # an interrupted append: keep whole videos only
        _rewrite_jsonl(folder / CLIPS_FILE, complete)
    skipped, broken_skipped = _read_jsonl(folder / SKIPPED_FILE, SKIPPED_KEYS)
    if broken_skipped:
        _rewrite_jsonl(folder / SKIPPED_FILE, skipped)
    state = _FolderState()
    # by file: records of an older ivvae hold paths relative to the directory it ran in (resumed from there)
    state.encoded_videos = {_video_key(r["path"]) for r in complete}
    state.done = state.encoded_videos | {_video_key(r["path"]) for r in skipped}
    if records:  # ids and shards of dropped records are not reused either
        state.next_id = max(r["id"] for r in records) + 1
        state.next_shard = max(int(r["shard"][len(SHARD_PREFIX):].split(".")[0]) for r in records) + 1
    return state


def _write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text))  # no partial file, no leftover temporary one


def _rewrite_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in records)
    write_atomically(path, lambda tmp: tmp.write_text(text))


def _append_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    try:
        with path.open("a") as f:
            f.write("".join(json.dumps(r) + "\n" for r in records))  # one write: a whole shard's lines
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:  # a cut line is dropped when the run is resumed
        raise write_error(path, error) from None


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
@dataclass
class _Video:
    """One source video's clips on their way to a shard."""

    path: str
    fps: float
    clips: list[Any]  # ivvae.eval.runner.Clip
    latents: list[torch.Tensor] = field(default_factory=list)


class _ShardWriter:
    """Collects encoded videos and writes a shard once it holds ``shard_size`` clips or more."""

    def __init__(self, folder: Path, state: _FolderState, shard_size: int, storage_dtype: torch.dtype) -> None:
        self.folder, self.shard_size, self.storage_dtype = folder, shard_size, storage_dtype
        self.next_id, self.next_shard = state.next_id, state.next_shard
        self.pending: list[_Video] = []
        self.shards_written = 0

    def add(self, videos: Iterable[_Video]) -> None:
        self.pending.extend(videos)
        if sum(len(v.clips) for v in self.pending) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        name = shard_name(self.next_shard)
        tensors, records = {}, []
        for video in self.pending:
            for clip, latents in zip(video.clips, video.latents, strict=True):
                key = f"{self.next_id:08d}"
                tensors[key] = latents.to(self.storage_dtype).contiguous()
                records.append({"id": self.next_id, "shard": name, "key": key, "path": video.path,
                                "video_clips": len(video.clips), "start": clip.start, "frames": int(clip.video.shape[1]),
                                "size": list(clip.size), "native_size": list(clip.native_size), "fps": video.fps,
                                "shape": list(latents.shape)})
                self.next_id += 1
        from safetensors.torch import save_file

        # Complete before it is listed; a failed write leaves neither a partial shard nor its temporary file.
        write_atomically(self.folder / name, lambda tmp: save_file(tensors, str(tmp), metadata={"format": FORMAT}))
        _append_jsonl(self.folder / CLIPS_FILE, records)
        self.next_shard += 1
        self.shards_written += 1
        self.pending = []


def _encode_videos(videos: list[_Video], encode: Callable[[torch.Tensor], torch.Tensor], batch_size: int) -> None:
    """Encode every clip of ``videos`` in batches of up to ``batch_size`` clips of one shape."""
    clips = [(video, clip) for video in videos for clip in video.clips]
    by_shape: dict[tuple[int, ...], list[tuple[_Video, Any]]] = {}
    for item in clips:
        by_shape.setdefault(tuple(item[1].video.shape), []).append(item)
    latents_of: dict[int, torch.Tensor] = {}
    for items in by_shape.values():
        for i in range(0, len(items), batch_size):
            batch = items[i:i + batch_size]
            z = encode(torch.stack([clip.video for _, clip in batch]))
            for (_, clip), latents in zip(batch, z, strict=True):
                latents_of[id(clip)] = latents
    for video in videos:
        video.latents = [latents_of[id(clip)] for clip in video.clips]


class _VideoReads(torch.utils.data.Dataset):
    """Reads the clips of one video per item: ``(path, _Video, None)`` or ``(path, None, reason)``
    (unreadable or too short), so DataLoader workers can decode while the model encodes."""

    def __init__(self, spec, items: Sequence[tuple[int, str]]) -> None:
        self.spec, self.items = spec, list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[str, _Video | None, str | None]:
        from .io import VideoReadError, probe_video

        index, path = self.items[k]
        try:
            return path, _Video(path, float(probe_video(path).fps or 0.0), self.spec.video_clips(path, index)), None
        except (VideoReadError, OSError) as error:
            return path, None, " ".join(str(error).split())


def _as_is(item: Any) -> Any:
    return item


def _read_videos(reads: _VideoReads, workers: int) -> Iterable[tuple[str, _Video | None, str | None]]:
    if workers == 0:
        return (reads[k] for k in range(len(reads)))
    return torch.utils.data.DataLoader(reads, batch_size=None, num_workers=workers, collate_fn=_as_is)


def encode_dataset(
    model,
    spec,
    out_dir: str | os.PathLike,
    *,
    normalize: bool = False,
    storage_dtype: str = "float32",
    shard_size: int = 256,
    batch_size: int = 1,
    workers: int = 0,
    part: tuple[int, int] | None = None,
    chunk_groups: int | None = None,
    tile: tuple[int, int] | None = None,
    dtype: str = "fp32",
    overwrite: bool = False,
    check_memory: bool = True,
    progress: bool = True,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Encode the clips ``spec`` chooses into the latent data set folder ``out_dir`` (see the module
    docstring); resumes a folder made with the same settings.

    Args:
        model: an IV-VAE (or family member) in eval mode.
        spec: a :class:`~ivvae.eval.runner.DatasetSpec` (videos, frames per clip, clips per video,
            size, crop, start fraction, number of videos).
        normalize: store ``scaling_factor * (z - shift_factor)`` (what a diffusion model trains on).
        storage_dtype: ``float32``, ``float16`` or ``bfloat16``.
        shard_size: clips per shard (a shard can hold more: a video's clips share one).
        batch_size: clips of one shape encoded together (faster on a GPU).
        workers: processes decoding videos while the model encodes (0: decode in this process).
        part: ``(i, k)``: encode only part ``i`` of ``k`` (videos ``i, i+k, i+2k, ...`` of the listing
            order), into a folder of its own, so ``k`` processes or machines share the work;
            :class:`LatentDataset` reads the ``k`` folders as one. Not with ``spec.num_videos``.
        chunk_groups, tile, dtype: as :func:`ivvae.pipeline.encode_video`.
        overwrite: replace a latent data set in ``out_dir`` instead of resuming it.
        check_memory: refuse a batch likely to exhaust memory (:func:`ivvae.pipeline.check_memory`).
        warn: called with a one-line message for each skipped video.

    Returns:
        A report: videos and clips encoded in this run, videos skipped, shards written, videos
        found done from an earlier run, and the folder's totals.

    Raises:
        LatentDatasetError: ``out_dir`` holds something else, or latents made with other settings.
    """
    from tqdm.auto import tqdm

    from .pipeline import check_memory as check_memory_fn
    from .pipeline import check_tile, encode_clips

    _check_model_and_spec(model, spec)
    tile = check_tile(tile, model.spatial_compression)  # before the folder is touched, and as dataset.json records it
    _check_encoding_options(spec, storage_dtype, shard_size, batch_size, part)
    _check_execution_options(workers, chunk_groups)
    folder = Path(out_dir)
    info = _dataset_info(model, spec, normalize=normalize, storage_dtype=storage_dtype, dtype=dtype, tile=tile, part=part)
    # absolute: the records must name the videos from any directory (before the folder is touched: an empty
    # source is an error here)
    paths = [_absolute(path) for path in spec.list_videos()]
    if part is not None and part[0] >= len(paths):
        raise ValueError(f"part {part[0]}/{part[1]} holds no video: the data has {len(paths)} video(s), and part i of k "
                         f"takes videos i, i+k, ...; split it into at most {len(paths)} part(s)")
    existed = folder.exists()
    fresh = not existed or (folder.is_dir() and not any(folder.iterdir()))
    state = _open_folder(folder, info, overwrite)
    writer = _ShardWriter(folder, state, shard_size, STORAGE_DTYPES[storage_dtype])
    checked_shapes: set[tuple[int, ...]] = set()

    def encode(batch: torch.Tensor) -> torch.Tensor:
        if check_memory and tuple(batch.shape) not in checked_shapes:
            b, _, t, h, w = batch.shape
            check_memory_fn(model, t * b, h, w, chunk_groups, tile, dtype)  # b clips ~ one b-times-longer clip
            checked_shapes.add(tuple(batch.shape))
        return encode_clips(model, batch, chunk_groups=chunk_groups, tile=tile, dtype=dtype, normalize=normalize)

    ordered = [(i, paths[i]) for i in spec.order(paths)]
    if part is not None:
        ordered = ordered[part[0]::part[1]]
    wanted = len(ordered) if spec.num_videos is None else spec.num_videos
    report = {"videos": 0, "clips": 0, "skipped": 0, "shards": 0, "smaller_than_crop": 0,
              "already_done": sum(_video_key(path) in state.done for _, path in ordered)}
    counted = sum(_video_key(path) in state.encoded_videos for _, path in ordered)  # videos with latents, towards `wanted`
    reads = _VideoReads(spec, [(i, path) for i, path in ordered if _video_key(path) not in state.done])
    group: list[_Video] = []

    def encode_and_write(videos: list[_Video]) -> None:
        _encode_videos(videos, encode, batch_size)
        writer.add(videos)
        report["videos"] += len(videos)
        report["clips"] += sum(len(v.clips) for v in videos)
        bar.update(len(videos))

    bar = tqdm(total=min(wanted, len(ordered)), initial=min(counted, wanted), desc="encode-dataset", unit="video",
               disable=not progress, dynamic_ncols=True)
    try:
        for path, video, reason in _read_videos(reads, workers) if counted < wanted else ():
            if video is None:
                _append_jsonl(folder / SKIPPED_FILE, [{"path": path, "reason": reason}])
                report["skipped"] += 1
                if warn is not None:
                    warn(f"skipping '{path}': {reason}")
                continue
            if _smaller_than_crop(spec, video):
                if not report["smaller_than_crop"] and warn is not None:
                    warn(_smaller_than_crop_message(spec, video))
                report["smaller_than_crop"] += 1
            group.append(video)
            counted += 1
            if sum(len(v.clips) for v in group) >= batch_size:
                encode_and_write(group)
                group = []
            if counted >= wanted:
                break
        if group:
            encode_and_write(group)
        writer.flush()
    finally:
        bar.close()
    report["shards"] = writer.shards_written
    records = complete_clip_records(folder)
    report["total_clips"], report["total_videos"] = len(records), len({r["path"] for r in records})
    if not records:
        _refuse_empty_result(folder, spec, remove=fresh, remove_folder=not existed)
    return report


def _smaller_than_crop(spec, video: _Video) -> bool:
    """Whether ``video``'s clips are smaller than the crop: kept at their size, so of another shape."""
    crop, (w, h) = spec.crop_size, video.clips[0].size
    return crop is not None and (w < crop[0] or h < crop[1])


def _smaller_than_crop_message(spec, video: _Video) -> str:
    (w, h), (cw, ch) = video.clips[0].size, spec.crop_size
    return (f"'{video.path}' gives {w}x{h} clips, smaller than the {cw}x{ch} crop (frames are not enlarged): its latents "
            f"have another shape; resize with --size {max(cw, ch)} (or more) for one shape, or batch with "
            "LatentDataset.same_shape_batches")


def _check_model_and_spec(model: Any, spec: Any) -> None:
    """Arguments of the wrong kind fail here, not as an AttributeError after the folder is made."""
    from .eval.runner import DatasetSpec

    if not (callable(getattr(model, "encode", None)) and hasattr(model, "spatial_compression") and hasattr(model, "config")):
        raise TypeError(f"model must be a loaded VAE of the family (ivvae.load_model(DIR)), got {type(model).__name__}")
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"spec must be an ivvae.eval.runner.DatasetSpec (e.g. DatasetSpec('videos/', protocol='custom', "
                        f"frames=17)), got {type(spec).__name__}")


def _check_execution_options(workers: int, chunk_groups: int | None) -> None:
    if not is_whole_number(workers) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 (0: decode in this process), got {workers!r}")
    if chunk_groups is not None and (not is_whole_number(chunk_groups) or chunk_groups < 1):
        raise ValueError(f"chunk_groups must be an integer >= 1 or None (one pass), got {chunk_groups!r}")


def _check_encoding_options(spec, storage_dtype: str, shard_size: int, batch_size: int, part: tuple[int, int] | None) -> None:
    if storage_dtype not in STORAGE_DTYPES:
        raise ValueError(f"storage_dtype must be one of {', '.join(STORAGE_DTYPES)}, got {storage_dtype!r}")
    if not (is_whole_number(shard_size) and is_whole_number(batch_size)) or shard_size < 1 or batch_size < 1:
        raise ValueError(f"shard_size and batch_size must be integers >= 1, got {shard_size!r} and {batch_size!r}")
    if part is not None:
        if isinstance(part, (str, bytes)) or not isinstance(part, Sequence) or len(part) != 2 or not all(is_whole_number(v) for v in part):
            raise TypeError(f"part must be a pair of ints (i, k): part i of k, got {part!r}")
        index, count = part
        if not 0 <= index < count:
            raise ValueError(f"part must be (i, k) with 0 <= i < k, got {part}")
        if spec.num_videos is not None:
            raise ValueError("a part of the videos and a number of videos do not combine: choose the videos first "
                             "(a manifest), then split them into parts")


def _dataset_info(model, spec, *, normalize: bool, storage_dtype: str, dtype: str, tile: tuple[int, int] | None,
                  part: tuple[int, int] | None) -> dict[str, Any]:
    """What ``dataset.json`` records: the model (config and weights hashes), the latents' form and the
    clip selection. A resumed run must match it."""
    from .pipeline import _dtype_name, _model_name, config_hash, weights_identity

    info = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": _model_name(model),
        "model_class": type(model).__name__,
        "config_hash": config_hash(model),
        **weights_identity(model),
        "latent_channels": int(model.config.latent_channels),
        "temporal_compression": int(model.temporal_compression),
        "spatial_compression": int(model.spatial_compression),
        "normalized": bool(normalize),
        "scaling_factor": float(model.config.scaling_factor),
        "shift_factor": float(model.config.shift_factor),
        "storage_dtype": storage_dtype,
        "dtype": _dtype_name(dtype),
        "tile": list(tile) if tile else None,
        "clips": {**spec.to_dict(), "source": _absolute_source(spec.to_dict()["source"])},  # any directory may resume it
        "part": list(part) if part is not None else None,
    }
    return json.loads(json.dumps(info))  # as a resumed run reads it back (lists, not tuples)


def _refuse_empty_result(folder: Path, spec, *, remove: bool, remove_folder: bool) -> None:
    """No clip could be read: remove what this run made (a fresh folder) and say why."""
    skipped, _ = _read_jsonl(folder / SKIPPED_FILE, SKIPPED_KEYS)
    if remove:  # leave no half-made data set behind
        for path in _our_files(folder):
            path.unlink()
        if remove_folder:
            folder.rmdir()
    first = f"; the first: '{skipped[0]['path']}': {skipped[0]['reason']}" if skipped else ""
    since = f" from {spec.start_fraction:g} of the video" if spec.start_fraction else ""
    raise LatentDatasetError(f"no clip could be read: {len(skipped)} video(s) unreadable or shorter than one clip "
                             f"({spec.frames} frames{since}){first}")


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def _check_same_settings(folders: Sequence[Path], infos: Sequence[dict[str, Any]]) -> None:
    """Folders read as one data set must hold latents of one kind (their videos may differ); parts must not repeat."""
    for folder, info in zip(folders[1:], infos[1:], strict=True):
        changed = [d for d in _differences(_without_source(infos[0]), _without_source(info)) if not d.startswith("part")]
        if changed:
            raise LatentDatasetError(f"'{folder}' was made with other settings than '{folders[0]}' ({'; '.join(changed)}); "
                                     "read them as separate data sets")
    if len({str(f.resolve()) for f in folders}) != len(folders):
        raise LatentDatasetError(f"the same folder is given twice ({', '.join(map(str, folders))}): its clips would repeat")
    for indices in _by_source(infos).values():
        _check_parts([folders[i] for i in indices], [infos[i] for i in indices])


def _by_source(infos: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    """The indices of the folders encoded from each ``--data`` (compared by the files it names)."""
    groups: dict[str, list[int]] = {}
    for i, info in enumerate(infos):
        groups.setdefault(json.dumps(_source_key(_source_of(info))), []).append(i)
    return groups


def _check_parts(folders: Sequence[Path], infos: Sequence[dict[str, Any]]) -> None:
    """Folders of one source: the parts I/K of one K, each once (a whole run shares every video with a part);
    a set of parts with some missing is read, with a warning."""
    parts = [tuple(info["part"]) if info.get("part") else None for info in infos]
    if len(set(parts)) != len(parts):
        raise LatentDatasetError(f"the same part is given twice ({', '.join(map(str, folders))}): its clips would repeat")
    if len(folders) > 1 and (None in parts or len({count for _, count in parts}) > 1):
        described = ", ".join(f"'{f}' ({'all videos' if part is None else f'part {part[0]}/{part[1]}'})"
                              for f, part in zip(folders, parts, strict=True))
        raise LatentDatasetError(f"these folders split the videos differently ({described}): parts of different splits, or a "
                                 "whole run with parts, share videos, whose clips would repeat; read parts I/K of one K together")
    if parts[0] is not None:
        missing = sorted(set(range(parts[0][1])) - {index for index, _ in parts})
        if missing:
            warnings.warn(f"reading {len(parts)} of the {parts[0][1]} parts of {_shown_source(_source_of(infos[0]))} "
                          f"({', '.join(map(str, folders))}): part(s) {', '.join(map(str, missing))} missing, so their videos are "
                          "left out; give every part's folder", UserWarning, stacklevel=4)


def _check_no_shared_videos(records: Sequence[dict[str, Any]]) -> None:
    """Folders of different sources (e.g. videos/ and videos/a/) must not hold one video twice."""
    folder_of: dict[str, str] = {}
    for record in records:
        video = _absolute(record["path"])
        first = folder_of.setdefault(video, record["folder"])
        if first != record["folder"]:
            raise LatentDatasetError(f"'{record['path']}' is encoded in both '{first}' and '{record['folder']}': its clips "
                                     "would repeat; read folders of different videos together")


def _combined_info(infos: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One ``info`` for the folders: the first's, with ``parts`` (and ``sources``) per folder; ``clips.source``
    lists every source when the folders have several."""
    sources = [_source_of(info) for info in infos]
    info = {**{k: v for k, v in infos[0].items() if k != "part"}, "parts": [i.get("part") for i in infos], "sources": sources}
    distinct = [s for i, s in enumerate(sources) if s not in sources[:i]]
    if len(distinct) > 1:
        info["clips"] = {**info["clips"], "source": distinct}
    return info


def _folder_list(folders: Any) -> list[Path]:
    """One folder or a list of them, as Paths; a file or anything else is refused with the reason."""
    try:
        paths = path_list(folders, "folders", "a latent data set folder or a list of them")
    except ValueError as error:
        raise LatentDatasetError(str(error)) from None
    for path in map(Path, paths):
        if path.is_file():
            raise LatentDatasetError(f"'{path}' is a file, not a latent data set folder; give the folder `ivvae encode-dataset` wrote")
    return [Path(f) for f in paths]


def _open_shard(path: Path) -> Any:
    """A safetensors handle on a shard; a missing or unreadable shard is the folder's fault, named as such."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise LatentDatasetError(f"shard '{path}' listed in {CLIPS_FILE} is missing; re-run `ivvae encode-dataset` "
                                 "into a new folder")
    try:
        return safe_open(str(path), framework="pt")
    except SafetensorError as error:
        raise LatentDatasetError(f"shard '{path}' is corrupt or not a safetensors file ({' '.join(str(error).split())}): "
                                 f"{_REPAIR[CLIPS_FILE]}") from None


class LatentDataset(torch.utils.data.Dataset):
    """The clips of a folder written by :func:`encode_dataset` / ``ivvae encode-dataset`` (or of
    several folders made with the same model and clip settings: the parts of ``--part I/K`` runs, or
    folders encoded from different ``--data``, e.g. ``videos/`` and ``images/``; a video in two of
    them is refused, and a set of parts with some missing is read with a warning).

    ``dataset[i]`` is a dict: ``latents`` ``(Z, T', H', W')`` (in ``dtype``, default float32), and
    the clip's record (``path``, ``start``, ``frames``, ``size``, ``fps``, ``id``, ``folder``, ...).
    ``info`` is the ``dataset.json`` (model, hashes, ``normalized``, ``scaling_factor``,
    ``shift_factor``, clip selection; ``parts`` and ``sources``: the part and the ``--data`` of
    each folder). Shards are opened
    lazily in each process, so the dataset works with DataLoader workers.

    Args:
        folders: the latent data set folder, or a list of them.
        dtype: dtype of the returned latents (``None``: as stored).
        normalize: return ``scaling_factor * (z - shift_factor)`` even where raw latents were
            stored (and raw latents are never un-normalised: ``False`` returns what is stored).

    Raises:
        LatentDatasetError: a folder that is not a latent data set, folders made with other
            settings, the same part twice, or a video in two folders.
    """

    def __init__(self, folders: str | os.PathLike | Sequence[str | os.PathLike], dtype: torch.dtype | None = torch.float32,
                 normalize: bool = False) -> None:
        self.folders = _folder_list(folders)
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype must be a float torch.dtype (e.g. torch.float16) or None (as stored), got {dtype!r}")
        infos = [_read_info(folder) for folder in self.folders]
        _check_same_settings(self.folders, infos)
        self.info = _combined_info(infos)
        self.records = [{**record, "folder": str(folder)} for folder in self.folders for record in complete_clip_records(folder)]
        if len(_by_source(infos)) > 1:
            _check_no_shared_videos(self.records)
        self.dtype = dtype
        self.normalize = normalize and not self.info.get("normalized", False)
        self._handles: dict[tuple[str, str], Any] = {}

    def __len__(self) -> int:
        return len(self.records)

    def _record(self, index: int) -> dict[str, Any]:
        """The record of clip ``index`` (negative counts from the end, as for a list)."""
        if not is_whole_number(index) and not (isinstance(index, torch.Tensor) and index.dim() == 0 and not index.is_floating_point()):
            raise TypeError(f"clip index must be an integer, got {type(index).__name__} {index!r}")
        if not -len(self.records) <= int(index) < len(self.records):  # IndexError also ends iteration by index
            raise IndexError(f"clip index {int(index)} is out of range: the data set has {len(self.records)} clip(s)")
        return self.records[int(index)]

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self._record(index)
        latents = self._tensor(record)
        if self.normalize:
            latents = self.info["scaling_factor"] * (latents.float() - self.info["shift_factor"])
        if self.dtype is not None:
            latents = latents.to(self.dtype)
        return {"latents": latents, **record}

    def encoded(self, index: int):
        """Clip ``index`` as :class:`~ivvae.pipeline.EncodedVideo` (latents ``(1, Z, T', H', W')`` and
        the metadata :func:`~ivvae.pipeline.decode_latents` needs: the encoding model's hashes,
        normalisation, frame count, size, fps), so ``decode_latents(model, data.encoded(i))``
        gives the clip's frames and refuses a model other than the encoding one."""
        from .pipeline import EncodedVideo

        record = self._record(index)
        latents = self._tensor(record).float()[None]
        info = self.info
        metadata = {"model": info["model"], "model_class": info["model_class"], "config_hash": info["config_hash"],
                    **{key: info.get(key) for key in _WEIGHTS_KEYS}, "normalized": info["normalized"],
                    "scaling_factor": info["scaling_factor"], "shift_factor": info["shift_factor"], "dtype": info["dtype"],
                    "tile": info["tile"], "chunk_groups": None, "fps": record["fps"], "num_frames": record["frames"],
                    "width": record["size"][0], "height": record["size"][1]}
        return EncodedVideo(latents=latents, metadata=metadata, source=f"clip {record['id']} of latent data set '{record['folder']}'")

    def _tensor(self, record: dict[str, Any]) -> torch.Tensor:
        from safetensors import SafetensorError

        key = (record["folder"], record["shard"])
        if key not in self._handles:
            self._handles[key] = _open_shard(Path(record["folder"]) / record["shard"])
        handle = self._handles[key]
        try:
            return handle.get_tensor(record["key"])
        except SafetensorError as error:
            problem = (f"has no tensor '{record['key']}' that {CLIPS_FILE} lists for clip {record['id']}"
                       if record["key"] not in handle.keys() else f"is corrupt ({' '.join(str(error).split())})")
            raise LatentDatasetError(f"shard '{Path(*key)}' {problem}: the folder is damaged; {_REPAIR[CLIPS_FILE]}") from None

    def shape(self, index: int) -> tuple[int, ...]:
        """The ``(Z, T', H', W')`` shape of clip ``index``, from the index (no shard is read)."""
        record = self._record(index)
        return tuple(record["shape"]) if "shape" in record else tuple(self._tensor(record).shape)

    def same_shape_batches(self, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                           drop_last: bool = False) -> SameShapeBatchSampler:
        """A ``batch_sampler`` for ``DataLoader`` whose batches hold clips of one shape: a data set of
        videos of several sizes (``encode-dataset`` keeps native sizes by default) cannot be stacked
        into one batch otherwise."""
        return SameShapeBatchSampler([self.shape(i) for i in range(len(self))], batch_size, shuffle=shuffle, seed=seed,
                                     drop_last=drop_last)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers open their own handles
        return {**self.__dict__, "_handles": {}}


class SameShapeBatchSampler(torch.utils.data.Sampler):
    """Batches of indices whose items share a shape, for ``DataLoader(batch_sampler=...)``.

    Each shape's indices are cut into batches of ``batch_size`` (the last one of a shape may be
    smaller unless ``drop_last``); with ``shuffle``, the indices and the order of the batches are
    shuffled anew each epoch, from ``seed`` and the epoch number (reproducible).
    """

    def __init__(self, shapes: Sequence[Sequence[int]], batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False) -> None:
        if not is_whole_number(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: expected a whole number >= 1")
        self.groups: dict[tuple[int, ...], list[int]] = {}
        for index, shape in enumerate(shapes):
            self.groups.setdefault(tuple(shape), []).append(index)
        self.batch_size, self.shuffle, self.seed, self.drop_last = int(batch_size), shuffle, seed, drop_last
        self.epoch = 0

    def _batches(self, generator: torch.Generator | None) -> list[list[int]]:
        batches = []
        for indices in self.groups.values():
            if generator is not None:
                indices = [indices[i] for i in torch.randperm(len(indices), generator=generator).tolist()]
            whole = len(indices) - len(indices) % self.batch_size if self.drop_last else len(indices)
            batches += [indices[i:i + self.batch_size] for i in range(0, whole, self.batch_size)]
        if generator is not None:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch) if self.shuffle else None
        self.epoch += 1
        return iter(self._batches(generator))

    def __len__(self) -> int:
        return len(self._batches(None))
