"""Review fixes of ``ivvae train``: an export never replaces a folder the run did not write, the input
config is never rewritten, a resume with a longer schedule takes it from its first step, and a finished
run says so. Tiny runs (2-4 steps, no validation) on the CPU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from test_train import TINY_MODEL, metrics, tiny_config, write_config

from ivvae.train import checkpoint as ckpt
from ivvae.train.trainer import lr_factor, run_training


def quick_config(**sections) -> dict:
    base = {"data": {"validation": {"enabled": False}}, "train": {"max_steps": 2, "num_threads": 1},
            "checkpoint": {"every": 0, "at_end": True, "keep_last": 2}, "export": {"at_end": True}}
    return tiny_config(**{**base, **sections})


def foreign_model_folder(folder: Path) -> Path:
    """A folder the user already has: another model and a file of theirs."""
    from ivvae import IVVAE

    IVVAE(**{**TINY_MODEL, "latent_channels": 4}).save_pretrained(folder)
    (folder / "README.txt").write_text("my notes")
    return folder


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def cli(capsys, *argv) -> tuple[int, str]:
    from ivvae.cli import main as cli_main

    code = cli_main([str(a) for a in argv])
    return code, capsys.readouterr().err


def counting_steps(seen: list[int]):
    return lambda trainer, step, logs: seen.append(step)


# ============================================================================================ 1: export ownership


def test_export_into_a_folder_the_run_did_not_write_is_refused_before_any_step(tmp_path, capsys):
    path = write_config(tmp_path / "tiny.yaml", quick_config())
    mine = foreign_model_folder(tmp_path / "models_prod")
    before = listing(mine)
    steps: list[int] = []
    with pytest.raises(FileExistsError, match=rf"'{mine}' .*not written by this run.*--overwrite"):
        run_training(path, [f"export.dir={mine}"], output_dir=tmp_path / "run", callbacks=[counting_steps(steps)])
    assert steps == [] and listing(mine) == before and not (tmp_path / "run").exists()
    code, err = cli(capsys, "train", path, "--output-dir", tmp_path / "run", "--set", f"export.dir={mine}")
    line = err.strip().splitlines()[-1]
    assert code == 2 and line.startswith("ivvae train: error: ") and str(mine) in line and "--overwrite" in line
    assert listing(mine) == before
    # asked for: replaced
    run_training(path, [f"export.dir={mine}"], output_dir=tmp_path / "run", overwrite=True)
    assert ckpt.exported_step(mine) == 2 and not (mine / "README.txt").exists()


def test_an_output_dir_with_an_export_but_no_checkpoints_is_refused(tmp_path):
    path = write_config(tmp_path / "tiny.yaml", quick_config())
    run = tmp_path / "proj"
    foreign_model_folder(run / "export")
    before = listing(run / "export")
    with pytest.raises(FileExistsError, match=r"export.*not written by this run"):
        run_training(path, output_dir=run)
    assert listing(run / "export") == before and sorted(p.name for p in run.iterdir()) == ["export"]
    # an empty folder holds nothing to lose
    empty = tmp_path / "empty"
    empty.mkdir()
    run_training(path, [f"export.dir={empty}"], output_dir=tmp_path / "run2")
    assert ckpt.exported_step(empty) == 2


def test_a_resumed_run_replaces_its_own_export_but_not_another_runs(tmp_path):
    path = write_config(tmp_path / "tiny.yaml", quick_config())
    run = tmp_path / "run"
    run_training(path, output_dir=run)
    record = json.loads((run / "export" / ckpt.EXPORT_RECORD).read_text())
    assert record["step"] == 2 and record["run_id"]
    summary = run_training(path, ["train.max_steps=3"], "auto", output_dir=run)
    assert summary["steps"] == 3 and ckpt.exported_step(run / "export") == 3
    assert json.loads((run / "export" / ckpt.EXPORT_RECORD).read_text())["run_id"] == record["run_id"]
    # another (fresh) run must not replace it
    with pytest.raises(FileExistsError, match="not written by this run"):
        run_training(path, [f"export.dir={run / 'export'}"], output_dir=tmp_path / "other")
    assert ckpt.exported_step(run / "export") == 3
    # a file the user put into the run's export: refused too (it would be deleted)
    (run / "export" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        run_training(path, ["train.max_steps=4"], "auto", output_dir=run)
    assert (run / "export" / "notes.txt").read_text() == "mine" and ckpt.exported_step(run / "export") == 3


def test_a_run_written_before_run_ids_resumes_and_replaces_its_export(tmp_path):
    """Exports and checkpoints of older versions name no run: the run folder's own export is still its own."""
    path = write_config(tmp_path / "tiny.yaml", quick_config())
    run = tmp_path / "run"
    run_training(path, output_dir=run)
    (run / "export" / ckpt.EXPORT_RECORD).write_text(json.dumps({"step": 2}) + "\n")
    state_file = run / "checkpoints" / "step_00000002" / ckpt.STATE_FILE
    state = json.loads(state_file.read_text())
    state.pop("run_id", None)
    state_file.write_text(json.dumps(state))
    assert run_training(path, ["train.max_steps=3"], "auto", output_dir=run)["steps"] == 3
    assert ckpt.exported_step(run / "export") == 3


def test_export_only_refuses_a_folder_that_is_not_an_export(tmp_path, capsys):
    path = write_config(tmp_path / "tiny.yaml", quick_config())
    run = tmp_path / "run"
    run_training(path, output_dir=run)
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "README.txt").write_text("mine")
    code, err = cli(capsys, "train", path, "--output-dir", run, "--export-only", "--set", f"export.dir={mine}")
    assert code == 2 and str(mine) in err and "--overwrite" in err and (mine / "README.txt").is_file()
    assert cli(capsys, "train", path, "--output-dir", run, "--export-only")[0] == 0  # its own export: replaced
    assert ckpt.exported_step(run / "export") == 2


# ============================================================================================ 2: config.yaml


def test_the_input_config_in_the_run_folder_is_never_rewritten(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    path = write_config(run / "config.yaml", quick_config())
    with open(path, "a") as f:
        f.write("# my handwritten notes\n")
    text = path.read_text()
    run_training(path, output_dir=run)
    assert path.read_text() == text
    run_training(path, ["train.max_steps=3"], "auto", output_dir=run)
    assert path.read_text() == text and (run / "config.resume-1.yaml").is_file()


def test_a_resume_with_another_config_keeps_the_first_and_records_its_own(tmp_path):
    path = write_config(tmp_path / "tiny.yaml", quick_config())
    run = tmp_path / "run"
    run_training(path, output_dir=run)
    first = (run / "config.yaml").read_text()
    run_training(path, ["train.max_steps=3"], "auto", output_dir=run)
    assert (run / "config.yaml").read_text() == first
    assert yaml.safe_load((run / "config.resume-1.yaml").read_text())["train"]["max_steps"] == 3
    assert "config.resume-1.yaml" in (run / "train.log").read_text() and "train.max_steps" in (run / "train.log").read_text()
    run_training(path, ["train.max_steps=3"], "auto", output_dir=run)  # the same config again: nothing new
    run_training(path, ["train.max_steps=4"], "auto", output_dir=run)
    assert sorted(p.name for p in run.glob("config*.yaml")) == ["config.resume-1.yaml", "config.resume-2.yaml", "config.yaml"]
    assert (run / "config.yaml").read_text() == first


def test_a_fresh_start_beside_another_config_yaml_keeps_it(tmp_path):
    """A folder with a config.yaml but no checkpoint (a start that saved none, or the user's file): moved aside, not lost."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("# not this run's\nseed: 1\n")
    run_training(write_config(tmp_path / "tiny.yaml", quick_config()), output_dir=run)
    assert (run / "config.previous-1.yaml").read_text() == "# not this run's\nseed: 1\n"
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["max_steps"] == 2


# ============================================================================================ 3: longer schedule


def test_a_resume_with_more_steps_takes_the_new_schedule_from_its_first_step(tmp_path):
    cfg = quick_config(schedule={"kind": "cosine", "warmup_steps": 1, "min_lr_ratio": 0.1}, export={"at_end": False},
                       train={"max_steps": 4, "num_threads": 1})
    path, run = write_config(tmp_path / "tiny.yaml", cfg), tmp_path / "run"
    run_training(path, output_dir=run)
    run_training(path, ["train.max_steps=7"], "auto", output_dir=run)
    logs = metrics(run)
    assert [m["step"] for m in logs] == list(range(1, 8))
    expected = [3e-3 * lr_factor(k, 1, 4, "cosine", 0.1) for k in range(4)] + [3e-3 * lr_factor(k, 1, 7, "cosine", 0.1) for k in (4, 5, 6)]
    assert [m["lr"] for m in logs] == pytest.approx(expected)
    text = (run / "train.log").read_text()
    assert "resume: the lr schedule's horizon changed from 4 to 7 steps" in text


# ============================================================================================ 4: a finished run


def test_resuming_a_finished_run_says_so_and_keeps_its_export(tmp_path, capsys):
    path = write_config(tmp_path / "tiny.yaml", quick_config())
    run = tmp_path / "run"
    run_training(path, output_dir=run)
    weights = run / "export" / "diffusion_pytorch_model.safetensors"
    before = (weights.stat().st_ino, weights.stat().st_mtime_ns)
    code, err = cli(capsys, "train", path, "--output-dir", run, "--resume", "auto")
    assert code == 0
    assert "already reached train.max_steps=2" in err and "--set train.max_steps=" in err
    assert (weights.stat().st_ino, weights.stat().st_mtime_ns) == before
    assert "already reached train.max_steps=2" in (run / "train.log").read_text()
    assert json.loads((run / "summary.json").read_text())["export"] == str(run / "export")
    assert os.path.isdir(run / "export")
