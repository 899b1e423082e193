"""The GPU round scripts of configs/small_z16 (a broken one would waste a lent GPU's minutes): their
syntax, and what `run_round` runs, with `ivvae train` replaced by a stub that logs its arguments."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from process_helpers import terminate_group_when

SCRIPTS = Path(__file__).resolve().parents[1] / "configs" / "small_z16"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.sh")))
def test_scripts_parse(script):
    subprocess.run(["bash", "-n", str(SCRIPTS / script)], check=True)


def run_round(tmp_path: Path, *, image_exports: bool, resume_minutes: str, image_args: str = "") -> list[str]:
    """The `ivvae train` calls of one round; the stub writes an export when ``image_exports``."""
    log = tmp_path / "calls.log"
    script = f"""
        cd {tmp_path}
        source {SCRIPTS / "_stage.sh"} {tmp_path / "results"}
        stub() {{
            echo "$*" >> {log}
            if [[ " $* " == *" image.yaml "* && {int(image_exports)} == 1 ]]; then
                mkdir -p img/export && echo {{}} > img/export/config.json
            fi
        }}
        ivvae_cmd=(stub)
        IVVAE_IMAGE_ARGS="{image_args}" run_round img image.yaml img fallback/export \\
            vid video.yaml vid {resume_minutes} --set extra=1
    """
    subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True)
    return log.read_text().splitlines()


def logging_stub(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A stand-in for `ivvae` that logs each call's arguments, and the environment that makes the scripts use it."""
    log, stub = tmp_path / "calls.log", tmp_path / "ivvae_stub.sh"
    stub.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n')
    stub.chmod(0o755)
    return log, {"PATH": "/usr/bin:/bin", "IVVAE_CMD": str(stub), "HOME": str(tmp_path)}


def test_a_round_trains_the_image_stage_then_inflates_its_export_then_resumes(tmp_path):
    calls = run_round(tmp_path, image_exports=True, resume_minutes="3.4", image_args="--set train.compile.enabled=true")
    assert len(calls) == 3
    assert calls[0].startswith("train image.yaml") and "train.compile.enabled=true" in calls[0] and calls[0].endswith("extra=1")
    assert calls[1].startswith("train video.yaml") and "inflate_from" not in calls[1] and "compile" not in calls[1]
    assert "--resume auto --set train.max_minutes=3.4" in calls[2] and calls[2].endswith("extra=1")
    assert (tmp_path / "results" / "img.tar").is_file()  # what a later session needs, packed


def test_without_an_image_export_the_video_stage_inflates_the_fallback_and_zero_skips_the_resume(tmp_path):
    calls = run_round(tmp_path, image_exports=False, resume_minutes="0")
    assert len(calls) == 2
    assert "--set model.init.inflate_from=fallback/export" in calls[1]


def test_the_wide_round_grows_the_image_vae_then_trains_the_wide_stages(tmp_path):
    """train_on_gpu_round3_wide.sh itself, with `ivvae` replaced by a stub (IVVAE_CMD)."""
    log, env = logging_stub(tmp_path)
    env["IVVAE_RESUME_MINUTES"] = "0"
    subprocess.run(["bash", str(SCRIPTS / "train_on_gpu_round3_wide.sh"), str(tmp_path / "results"), "--set", "extra=1"],
                   cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    calls = log.read_text().splitlines()
    assert calls[0] == "grow runs/small_z16/1d_image_vae_gpu/export runs/small_z16/1d_wide --channel-multipliers 1 2 4 6"
    assert calls[1].startswith("train configs/small_z16/1e_wide_image_vae_gpu.yaml") and calls[1].endswith("extra=1")
    # the stub leaves no exports: the video stage falls back to the grown image VAE
    assert calls[2].startswith("train configs/small_z16/2c_wide_ivvae_video_gpu.yaml")
    assert "model.init.inflate_from=runs/small_z16/1d_wide" in calls[2] and len(calls) == 3


def test_round_4_trains_on_from_the_shipped_image_vae(tmp_path):
    """train_on_gpu_round4.sh: stage 1f-wide from the 1e-wide export, 2d-wide inflating it (or, with
    no 1f-wide export, the 1e-wide one), resumed for the minutes asked."""
    log, env = logging_stub(tmp_path)
    env["IVVAE_RESUME_MINUTES"] = "2.5"
    subprocess.run(["bash", str(SCRIPTS / "train_on_gpu_round4.sh"), str(tmp_path / "results")],
                   cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    calls = log.read_text().splitlines()
    assert len(calls) == 3
    assert calls[0].startswith("train configs/small_z16/1f_wide_image_vae_gpu.yaml")
    assert calls[1].startswith("train configs/small_z16/2d_wide_ivvae_video_gpu.yaml")
    assert "model.init.inflate_from=runs/small_z16/1e_wide_image_vae_gpu/export" in calls[1]
    assert "--resume auto --set train.max_minutes=2.5" in calls[2]


def test_the_wide_configs_build_the_wider_models():
    from ivvae.train.config import load_config

    image = load_config(SCRIPTS / "1e_wide_image_vae_gpu.yaml")
    video = load_config(SCRIPTS / "2c_wide_ivvae_video_gpu.yaml")
    assert image.model.init.from_pretrained == "runs/small_z16/1d_image_vae_gpu/export"
    assert image.model.init.grow.channel_multipliers == [1, 2, 4, 6]
    assert list(video.model.config["channel_multipliers"]) == [1, 2, 4, 6]
    assert video.model.init.inflate_from == "runs/small_z16/1e_wide_image_vae_gpu/export"
    round4_video = load_config(SCRIPTS / "2d_wide_ivvae_video_gpu.yaml")
    assert list(round4_video.model.config["channel_multipliers"]) == [1, 2, 4, 6]
    assert round4_video.loss.mse_weight == 10.0 and load_config(SCRIPTS / "1f_wide_image_vae_gpu.yaml").loss.mse_weight == 10.0


def test_a_pack_larger_than_the_device_tool_brings_back_is_split_into_parts(tmp_path):
    """Files over 16 MiB do not come back from the GPU machine: the tar is split, and joins again."""
    export = tmp_path / "run" / "export"
    export.mkdir(parents=True)
    (export / "config.json").write_text("{}")
    (export / "weights.bin").write_bytes(bytes(range(256)) * 40)
    for name in ("metrics.jsonl", "summary.json", "config.yaml"):
        (tmp_path / "run" / name).write_text("{}")
    script = f"""
        cd {tmp_path}
        IVVAE_PART_BYTES=4000 source {SCRIPTS / "_stage.sh"} {tmp_path / "results"}
        ivvae_cmd=(true)
        train_stage big config.yaml run
    """
    subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True)
    parts = sorted((tmp_path / "results").glob("big.tar.part*"))
    assert len(parts) >= 3 and not (tmp_path / "results" / "big.tar").exists()
    assert all(p.stat().st_size <= 4000 for p in parts)
    joined = tmp_path / "joined.tar"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    listing = subprocess.run(["tar", "-tf", str(joined)], check=True, capture_output=True, text=True).stdout
    assert "export/weights.bin" in listing


def test_a_terminated_round_packs_the_stopped_stage_and_starts_no_other(tmp_path):
    """`timeout` signals the whole group: the stage (here a stub that saves on SIGTERM, as
    `ivvae train` does) is still packed, its log kept whole, and the video stage never starts."""
    stub = tmp_path / "ivvae_stub.sh"
    stub.write_text(f"""#!/usr/bin/env bash
echo "$*" >> {tmp_path / "calls.log"}
trap 'mkdir -p img/export && echo {{}} > img/export/config.json && echo saved on TERM && exit 143' TERM
echo started; touch {tmp_path / "started"}
sleep 60 & wait $!
""")
    stub.chmod(0o755)
    script = f"""
        cd {tmp_path}
        source {SCRIPTS / "_stage.sh"} {tmp_path / "results"}
        ivvae_cmd=({stub})
        run_round img image.yaml img fallback/export vid video.yaml vid 3.4
    """
    code, out, err = terminate_group_when(["bash", "-c", script], (tmp_path / "started").exists, start_timeout_s=30)
    assert code == 143, out + err
    assert (tmp_path / "calls.log").read_text().splitlines() == ["train image.yaml --set logging.progress_bar=false"]
    assert (tmp_path / "results" / "img.tar").is_file()
    assert "saved on TERM" in (tmp_path / "results" / "img.log").read_text()


def test_stage_2e_continues_the_shipped_model_then_anneals_in_a_second_command(tmp_path):
    """train_on_gpu_2e.sh: stage 2e-wide with the arguments given; IVVAE_SKIP_MAIN=1 with
    IVVAE_TAIL_MINUTES runs only the resumed tail, at the low peak lr."""
    log, env = logging_stub(tmp_path)
    script = str(SCRIPTS / "train_on_gpu_2e.sh")
    subprocess.run(["bash", script, str(tmp_path / "results"), "--set", "train.max_minutes=8.8"],
                   cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    subprocess.run(["bash", script, str(tmp_path / "results")], cwd=tmp_path, check=True, capture_output=True, text=True,
                   env={**env, "IVVAE_SKIP_MAIN": "1", "IVVAE_TAIL_MINUTES": "2.4"})
    calls = log.read_text().splitlines()
    assert len(calls) == 2
    assert calls[0].startswith("train configs/small_z16/2e_wide_continue_gpu.yaml") and calls[0].endswith("train.max_minutes=8.8")
    assert "--resume" not in calls[0]
    assert calls[1].startswith("train configs/small_z16/2e_wide_continue_gpu.yaml")
    assert "--resume auto --set train.max_minutes=2.4 --set optimizer.lr=6e-5" in calls[1]


@pytest.mark.parametrize("stage", ["2f_grown", "2g_grown"])
def test_the_same_script_runs_the_grown_stages_and_refuses_an_unknown_one(tmp_path, stage):
    """IVVAE_STAGE=2f_grown (the shipped model widened) or 2g_grown (the next lease's): its config, run folder and archives."""
    log, env = logging_stub(tmp_path)
    script = str(SCRIPTS / "train_on_gpu_2e.sh")
    subprocess.run(["bash", script, str(tmp_path / "results")], cwd=tmp_path, env={**env, "IVVAE_STAGE": stage},
                   check=True, capture_output=True, text=True)
    call = log.read_text().splitlines()
    assert len(call) == 1 and call[0].startswith(f"train configs/small_z16/{stage}_continue_gpu.yaml")
    assert (tmp_path / "results" / f"stage{stage}.log").is_file()  # its own log (and archive, once there is an export)
    done = subprocess.run(["bash", script, str(tmp_path / "results")], cwd=tmp_path, env={**env, "IVVAE_STAGE": "2h"},
                          capture_output=True, text=True)
    assert done.returncode == 2 and "IVVAE_STAGE=2h: there is no configs/small_z16/2h_continue_gpu.yaml" in done.stderr
    assert len(log.read_text().splitlines()) == 1
