"""Two processes with DDP on the CPU (gloo), launched by torchrun: identical weights, sharded data,
and a DDP resume that repeats the uninterrupted run.

Each launch costs ~15-30 s of start-up on a 2-core machine (two interpreters importing torch);
the tests use tiny widths, 5-frame 32 px clips and one thread per process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist
import yaml

from ivvae.train import checkpoint as ckpt

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")

SCRIPT = r'''
import hashlib, json, os, signal, sys
from ivvae.train.config import load_config
from ivvae.train import losses as loss_module
from ivvae.train.trainer import NonFiniteLossError, Trainer

config, out, resume = sys.argv[1], sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 else None)
losses = {}
signal_at = os.environ.get("SIGTERM_AT")  # "RANK:STEP": that process alone receives SIGTERM after that step
nan_at = os.environ.get("NAN_AT")  # "RANK:STEP": that process alone logs a NaN total loss from that step on

if nan_at:
    nan_rank, nan_step = (int(v) for v in nan_at.split(":"))
    forward = loss_module.VAELoss.forward

    def forward_logging_nan(self, x, x_rec, posterior, step, **kwargs):
        loss, logs = forward(self, x, x_rec, posterior, step, **kwargs)
        if int(os.environ["RANK"]) == nan_rank and step + 1 >= nan_step:
            logs = {**logs, "total": float("nan")}
        return loss, logs

    loss_module.VAELoss.forward = forward_logging_nan

def record(t, step, logs):
    losses[step] = logs["l1"]
    if signal_at == f"{t.accelerator.process_index}:{step}":
        os.kill(os.getpid(), signal.SIGTERM)

trainer = Trainer(load_config(config), output_dir=out, callbacks=[record])
try:
    summary = trainer.train(resume=resume)
except NonFiniteLossError as error:
    summary = {"steps": trainer.step, "stopped_by": None, "error": str(error)}
acc = trainer.accelerator

def digest(module):
    state = acc.unwrap_model(module).state_dict()
    return hashlib.sha256(b"".join(v.detach().cpu().contiguous().numpy().tobytes() for _, v in sorted(state.items()))).hexdigest()

with open(os.path.join(out, f"rank{acc.process_index}.json"), "w") as f:
    json.dump({"world": acc.num_processes, "vae": digest(trainer.ae), "disc": digest(trainer.discriminator),
               "l1": losses, "summary_steps": summary["steps"], "stopped_by": summary["stopped_by"],
               "error": summary.get("error")}, f)
acc.end_training()  # as `ivvae train` does: a gloo group left to the interpreter's exit can abort the process
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tmp_path: Path, config: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> list[dict]:
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(script), str(config), str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, f"torchrun failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.fixture(scope="module")
def ddp_config(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ddp")
    cfg = {
        "seed": 0,
        "model": {"class": "ivvae.models.IVVAE",
                  "config": {"latent_channels": 8, "base_channels": 8, "encoder_blocks": 1, "decoder_blocks": 1}},
        "data": {"sources": ["sample:carphone", "sample:bikes"], "num_workers": 0,
                 "buckets": [{"num_frames": 5, "size": 32, "crop": 32, "batch_size": 1}],
                 "validation": {"num_clips": 1, "num_frames": 5, "size": 32, "crop": 32}},
        "loss": {"lpips": {"enabled": False},
                 "gan": {"enabled": True, "start_step": 1, "discriminator": {"kind": "3d", "base_channels": 8}}},
        "optimizer": {"lr": 3e-3},
        "schedule": {"warmup_steps": 1},
        "train": {"max_steps": 4, "num_threads": 1},
        "logging": {"every": 1, "val_every": 0, "val_at_start": False, "progress_bar": False, "tensorboard": False},
        "checkpoint": {"every": 2, "keep_last": 0},
        "export": {"at_end": True},
    }
    path = root / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return root, path


@pytest.fixture(scope="module")
def ddp_run(ddp_config, tmp_path_factory):
    root, path = ddp_config
    out = root / "run"
    return out, launch(root, path, out)


def test_ddp_two_processes_end_with_identical_weights(ddp_run):
    out, ranks = ddp_run
    assert [r["world"] for r in ranks] == [2, 2] and all(r["summary_steps"] == 4 for r in ranks)
    assert ranks[0]["vae"] == ranks[1]["vae"]
    assert ranks[0]["disc"] == ranks[1]["disc"]
    assert ranks[0]["l1"] != ranks[1]["l1"]  # each process trained on its own shard of batches
    last = ckpt.latest_checkpoint(out / "checkpoints")
    assert last.name == "step_00000004"
    assert {"random_states_0.pkl", "random_states_1.pkl", "model_1.safetensors"} <= {p.name for p in last.iterdir()}
    state = json.loads((last / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["samples_seen"] == 8
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged] == [1, 2, 3, 4] and "d_loss" in logged[-1]
    assert (out / "export" / "config.json").is_file()


def test_ddp_resume_repeats_the_uninterrupted_run(ddp_run, ddp_config):
    out, ranks = ddp_run
    root, path = ddp_config
    resumed = root / "resumed"
    again = launch(root, path, resumed, str(out / "checkpoints" / "step_00000002"))
    assert again[0]["vae"] == again[1]["vae"] == ranks[0]["vae"]
    assert again[0]["disc"] == ranks[0]["disc"]
    for r in range(2):
        assert again[r]["l1"] == {k: v for k, v in ranks[r]["l1"].items() if int(k) > 2}


def test_ddp_time_budget_stops_every_process_at_the_same_step(ddp_config, tmp_path):
    """With train.max_minutes the main process plans the horizon and broadcasts it: both processes
    stop at the same step (a disagreement would hang the next collective) with equal weights."""
    root, path = ddp_config
    cfg = yaml.safe_load(path.read_text())
    cfg["train"].update({"max_steps": 100_000, "max_minutes": 0.05})
    cfg["checkpoint"] = {"every": 0, "keep_last": 0}
    budget = tmp_path / "budget.yaml"
    budget.write_text(yaml.safe_dump(cfg))
    ranks = launch(tmp_path, budget, tmp_path / "run")
    steps = [r["summary_steps"] for r in ranks]
    assert steps[0] == steps[1] and 2 <= steps[0] < 100_000
    assert ranks[0]["vae"] == ranks[1]["vae"]


def test_ddp_a_signal_to_one_process_stops_both_at_the_same_step(ddp_config, tmp_path):
    """SIGTERM reaching one process only (a node's preemption notice): the stop is shared at that
    step (a process left training would hang the next collective), then both save."""
    root, path = ddp_config
    cfg = yaml.safe_load(path.read_text())
    cfg["train"]["max_steps"] = 100_000
    cfg["checkpoint"] = {"every": 0, "keep_last": 0}
    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump(cfg))
    ranks = launch(tmp_path, config, tmp_path / "run", env={"SIGTERM_AT": "1:2"})
    assert [r["summary_steps"] for r in ranks] == [2, 2]
    assert [r["stopped_by"] for r in ranks] == ["another process", "SIGTERM"]
    assert ranks[0]["vae"] == ranks[1]["vae"]
    assert ckpt.latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step_00000002"
    assert (tmp_path / "run" / "export" / "config.json").is_file()


def test_ddp_a_non_finite_loss_on_one_process_stops_every_process(ddp_config, tmp_path):
    """Rank 1 alone sees a NaN loss at step 2: both processes stop there (one disagreeing process would
    hang the next collective), and nothing of that step is checkpointed or exported."""
    root, path = ddp_config
    out = tmp_path / "run"
    ranks = launch(tmp_path, path, out, env={"NAN_AT": "1:2"})
    assert [r["summary_steps"] for r in ranks] == [2, 2]
    assert ranks[1]["error"].startswith("step 2: the loss is not finite (")
    assert ranks[0]["error"].startswith("step 2: the loss is not finite on another process (")
    assert ckpt.latest_checkpoint(out / "checkpoints") is None and not (out / "export").exists()


def test_ivvae_train_tears_down_the_process_group_it_ran_in():
    """A gloo group left to the interpreter's exit can abort a finished process; train_main ends it (_end_process_group)."""
    import torch.distributed as dist

    from ivvae.train.trainer import _end_process_group

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        assert dist.is_initialized()
        _end_process_group()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    _end_process_group()  # nothing to end: a no-op
