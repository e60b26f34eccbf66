"""Training under careless use (issue 16, "Training runs"): damaged checkpoints, the NaN advice, argument
validation, a progress bar that tells the truth under a time budget, and every unusable training file
listed with its reason. Runs are tiny (a few steps of a 1-channel ESPCN on 16 px crops)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from srkeras import recipes  # noqa: E402
from srkeras.recipes import Recipe  # noqa: E402
from srkeras.training.callbacks import ProgressBar, RunState  # noqa: E402
from srkeras.training.runner import Run, TrainingError  # noqa: E402

_yy, _xx = np.mgrid[0:32, 0:32] / 32.0
IMAGES = {f"p{i}": np.stack([0.5 + 0.4 * np.sin(3 * _xx + i), 0.5 + 0.4 * np.cos(2 * _yy - i), 0.5 + 0.3 * np.sin(2 * (_xx + _yy))], -1).astype(np.float32) for i in range(2)}


def tiny_cfg(steps=4, lr=3e-3, **schedule):
    return {
        "recipe": {"name": "tiny_espcn", "kind": "supervised"},
        "model": {"name": "espcn", "scale": 2, "options": {"channels": 1, "n1": 4, "n2": 4}},
        "data": {"hr_patch": 16, "batch": 2, "augment": False},
        "train": {"steps": steps, "checkpoint_every": 2, "val_every": 0, "log_every": 2, "seed": 0},
        "optimizer": {"name": "adam", "lr": lr},
        "schedule": {"kind": "constant", **schedule},
        "loss": {"terms": [{"name": "mse", "weight": 1.0}]},
        "run": {"strategy": "default"},
    }


def run(cfg, out, log=None):
    r = Run(Recipe.from_dict(cfg), out, IMAGES, progress=False, log=log or (lambda *a: None))
    r.setup()
    return r


# ---- a damaged latest checkpoint: fall back to the newest readable one, saying which and why ------------


@pytest.mark.parametrize("part, damage", [("data-00000-of-00001", "truncate"), ("index", "garbage")])
def test_damaged_latest_checkpoint_falls_back(tmp_path, part, damage):
    run(tiny_cfg(steps=4), tmp_path).train()
    f = tmp_path / "checkpoints" / f"ckpt-4.{part}"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2] if damage == "truncate" else os.urandom(len(data)))
    log = []
    r = run(tiny_cfg(steps=6), tmp_path, log.append)
    text = "\n".join(log)
    assert r.start_step == 2 and "ckpt-4 is unreadable" in text and "falling back to ckpt-2" in text, text
    assert (tmp_path / "checkpoints" / "unreadable" / f.name).is_file()  # kept, not deleted
    assert int(np.asarray(r.g_optimizer.iterations.numpy())) == 2  # ckpt-2's optimizer state, not a fresh one
    summary = r.train()
    assert summary["step"] == 6 and summary["optimizer_iterations"] == 6


def test_no_readable_checkpoint_is_a_clear_error(tmp_path):
    run(tiny_cfg(steps=2), tmp_path).train()
    for f in (tmp_path / "checkpoints").glob("ckpt-*.index"):
        f.write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="no checkpoint .* can be read"):
        run(tiny_cfg(steps=4), tmp_path)


# ---- the NaN advice can be followed: the learning rate may change on resume, and is recorded ---------


def test_learning_rate_may_change_on_resume_and_is_recorded(tmp_path):
    run(tiny_cfg(steps=2, lr=3e-3), tmp_path).train()
    r = run(tiny_cfg(steps=4, lr=1e-4), tmp_path)
    assert r.start_step == 2 and r.lr_now() == pytest.approx(1e-4)  # the new rate, not the checkpoint's
    r.train()
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["optimizer"]["lr"] == 1e-4
    assert cfg["changes"] == [{"step": 2, "changed": {"optimizer.lr": [3e-3, 1e-4], "train.steps": [2, 4]}}]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[-1].split(",")[2] == "0.0001"
    # A schedule switch that the optimizer's state cannot follow is refused, naming it.
    with pytest.raises(TrainingError, match="schedule.*constant"):
        run(tiny_cfg(steps=6, lr=1e-4, kind="cosine"), tmp_path)


def test_lr_flag_and_set_conflict_is_an_error():
    from pipelines.train import parse_args, recipe_from_args

    with pytest.raises(ValueError, match="--lr .* conflicts with --set optimizer.lr"):
        recipe_from_args(parse_args(["--recipe", "espcn", "--lr", "1e-4", "--set", "optimizer.lr=1e-3"]))
    with pytest.raises(ValueError, match="given twice"):
        recipe_from_args(parse_args(["--recipe", "espcn", "--set", "optimizer.lr=1e-3", "--set", "optimizer.lr=1e-2"]))
    cfg = recipe_from_args(parse_args(["--recipe", "espcn", "--lr", "1e-4", "--set", "optimizer.lr=1e-4"])).config  # agreeing is fine
    assert cfg["optimizer"]["lr"] == 1e-4


# ---- argument validation: clear errors, exit 2, before any work -------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scale", "0"], "--scale 0: model.scale must be a positive integer"),
        (["--batch-size", "0"], "--batch-size 0: data.batch must be a positive integer"),
        (["--steps", "-5"], "--steps -5: train.steps must be a positive integer"),
        (["--set", "optimizer=1"], "--set optimizer=1: cannot set 'optimizer'"),
        (["--set", "trian.steps=1"], "unknown recipe key 'trian.steps'; did you mean 'train.steps'?"),
        (["--set", "optimizer.bta_1=0.5"], "did you mean 'optimizer.beta_1'?"),
        (["--max-minutes", "-1"], "--max-minutes -1.0: run.max_minutes must be a number > 0"),
        (["--patch-size", "31"], "data.hr_patch 31 is not a multiple of model.scale 3"),
    ],
)
def test_bad_arguments_exit_2_before_any_work(tmp_path, capsys, args, message):
    from pipelines.train import main

    out = tmp_path / "run"
    assert main(["--recipe", "espcn", "--out", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not out.exists()


def test_library_raises_recipe_errors_naming_the_key():
    cfg = tiny_cfg()
    cfg["train"]["steps"] = 0
    with pytest.raises(recipes.RecipeError, match="train.steps") as e:
        recipes.Recipe.from_dict(cfg)
    assert e.value.key == "train.steps"
    with pytest.raises(recipes.RecipeError, match="did you mean 'schedule.milestones'"):
        recipes.Recipe.from_dict({**tiny_cfg(), "schedule": {"kind": "multistep", "milestone": [5]}})


# ---- progress against whichever limit ends the run first --------------------------------------------


def _bar(total_steps, max_minutes, times_steps):
    clock = iter([t for t, _ in times_steps])
    st = RunState(0, total_steps, started=0.0, max_minutes=max_minutes)
    bar = ProgressBar(st, enabled=True, clock=lambda: next(clock))
    for _, step in times_steps:
        st.step = step
        st.last_logs = {"loss": 0.1}
        bar.on_train_batch_end(step - 1)
    return bar


def test_progress_bar_ends_where_the_time_budget_ends_the_run():
    # 10 steps/s, 8 minutes: the run ends near step 4,700, not at 1,000,000 six hours later.
    bar = _bar(10**6, 8, [(10.0, 1), (20.0, 101)])
    assert bar.limit == "time" and bar.bar.total == 101 + 10 * (480 - 20)
    eta = (bar.bar.total - bar.bar.n) / 10.0
    assert eta == pytest.approx(460.0)
    bar.close()
    # The step count ends it first: progress against the steps.
    bar = _bar(500, 8, [(10.0, 1), (20.0, 101)])
    assert bar.limit == "steps" and bar.bar.total == 500
    bar.close()
    bar = _bar(10**6, None, [(10.0, 1), (20.0, 101)])  # no budget: the step count
    assert bar.bar.total == 10**6
    bar.close()


# ---- every unusable training file is listed with its reason -----------------------------------------


def _messy_folder(d: Path, with_good=True):
    from srkeras.data import save_image

    d.mkdir()
    if with_good:
        save_image(d / "good.png", IMAGES["p0"])
    save_image(d / "small.png", IMAGES["p0"][:8, :8])
    save_image(d / "whole.png", IMAGES["p1"])
    data = (d / "whole.png").read_bytes()
    (d / "whole.png").unlink()
    (d / "truncated.png").write_bytes(data[: len(data) // 2])
    (d / "fake.jpg").write_text("this is not a JPEG")
    (d / "notes.txt").write_text("where the photos came from")
    (d / "gone.png").symlink_to(d / "does-not-exist.png")
    (d / "more").mkdir()
    return d


def test_every_unusable_training_file_is_listed_with_its_reason(tmp_path):
    from srkeras.data.dataset import load_hr_folders

    d = _messy_folder(tmp_path / "hr")
    cache = load_hr_folders(d, min_size=16, progress=False)
    assert [Path(n).name for n in cache.names] == ["good.png"]
    reasons = {Path(m.split(": ", 1)[0]).name: m.split(": ", 1)[1] for m in cache.skipped}
    assert set(reasons) == {"small.png", "truncated.png", "fake.jpg", "notes.txt", "gone.png", "more"}, reasons
    assert "smaller than the 16x16" in reasons["small.png"]
    assert "truncated" in reasons["truncated.png"] and "not an image" in reasons["fake.jpg"]
    assert "not an image file" in reasons["notes.txt"] and "broken link" in reasons["gone.png"] and "folder" in reasons["more"]
    # The run's start-up message lists each.
    log = []
    r = Run(Recipe.from_dict(tiny_cfg()), tmp_path / "run", [str(d)], progress=False, log=log.append)
    r.replicas = 1
    r.setup_data()
    text = "\n".join(log)
    assert "6 unusable training files skipped" in text and all(name in text for name in reasons), text


def test_no_usable_training_file_is_an_error_listing_all(tmp_path):
    from srkeras.data.dataset import load_hr_folders

    d = _messy_folder(tmp_path / "hr", with_good=False)
    with pytest.raises(ValueError, match="no training image is usable") as e:
        load_hr_folders(d, min_size=16, progress=False)
    for name in ("small.png", "truncated.png", "fake.jpg", "notes.txt", "gone.png"):
        assert name in str(e.value)


# ---- a diverged run's "last good checkpoint" can be resumed (issue 24, item 7) -----------------------


def _overflow_then_nan(r):
    """A loss term that is 0 for a step, then so large at step 2 that Adam's second moment (grad^2)
    overflows to Inf while the weights and the loss stay finite, then NaN -- what ``--lr 1e3`` does."""
    import keras

    counter = keras.Variable(0.0, trainable=False)

    def diverge(y_true, y_pred):
        counter.assign_add(1.0)
        huge = 1e30 * tf.reduce_mean(y_pred)
        return tf.where(counter > 2.0, tf.constant(np.nan), tf.where(counter > 1.0, huge, 0.0))

    r.trainer.loss_terms.terms.append(("diverge", diverge, 1.0))


def test_a_diverged_run_resumes_at_a_lower_learning_rate(tmp_path):
    from srkeras.training.runner import NonFiniteError

    cfg = tiny_cfg(steps=6, lr=3e-3)
    cfg["train"]["checkpoint_every"] = 1
    r = run(cfg, tmp_path)
    _overflow_then_nan(r)
    with pytest.raises(NonFiniteError, match=r"g_optimizer by step 2.*last good checkpoint is \S*ckpt-1"):
        r.train()
    assert not (tmp_path / "checkpoints" / "ckpt-2.index").exists()  # the Inf Adam state was never saved
    log = []
    r = run({**cfg, "optimizer": {"name": "adam", "lr": 1e-4}}, tmp_path, log.append)
    assert r.start_step == 1 and r.nonfinite() == [], log
    summary = r.train()
    assert summary["step"] == 6 and summary["optimizer_iterations"] == 6


def test_a_checkpoint_holding_inf_optimizer_state_is_set_aside_on_resume(tmp_path):
    cfg = tiny_cfg(steps=2)
    cfg["train"]["checkpoint_every"] = 1
    r = run(cfg, tmp_path)
    r.train()
    slot = next(v for v in r.g_optimizer.variables if "velocity" in v.path)  # Adam's second moment
    slot.assign(np.full(slot.shape, np.inf, np.float32))
    r.checkpoint.save(3)  # as the code before issue 24 did: only generator weights were checked
    log = []
    r = run(tiny_cfg(steps=5), tmp_path, log.append)
    text = "\n".join(log)
    assert r.start_step == 2 and "ckpt-3 holds NaN/Inf values in g_optimizer" in text and "falling back to ckpt-2" in text, text
    assert (tmp_path / "checkpoints" / "unreadable" / "ckpt-3.index").is_file()
    assert r.train()["step"] == 5


# ---- unwritable --out and a full disk while training (issue 24, item 11) ----------------------------


def test_train_out_onto_a_file_or_a_read_only_folder_exits_2_before_any_work(tmp_path, monkeypatch, capsys):
    import errno

    import pipelines.train as cli
    from srkeras import files

    monkeypatch.setattr(cli, "run_training", lambda job: pytest.fail("trained with an unwritable --out"))
    (tmp_path / "file").write_text("x")
    assert cli.main(["--recipe", "espcn", "--out", str(tmp_path / "file"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"error: --out {tmp_path / 'file'}: is not a folder" in err and "Traceback" not in err, err

    def read_only(path):
        raise PermissionError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(files, "_new_temp_file", read_only)  # what a read-only folder does (tests run as root)
    assert cli.main(["--recipe", "espcn", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"error: --out {tmp_path}: cannot write in this folder (Read-only file system)" in err, err


def test_a_full_disk_while_training_names_the_path_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    import errno

    import keras

    import pipelines.train as cli
    from srkeras.training import runner
    from srkeras.training.errors import OutputError

    real_save = tf.train.CheckpointManager.save

    def full(self, checkpoint_number=None, **kw):
        if checkpoint_number == 4:
            raise tf.errors.ResourceExhaustedError(None, None, f"{self.directory}/ckpt-4_temp; No space left on device")
        return real_save(self, checkpoint_number=checkpoint_number, **kw)

    def train():
        return runner.train(Recipe.from_dict(tiny_cfg(steps=6)), tmp_path, IMAGES, progress=False, log=lambda *a: None)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
    ckpts = tmp_path / "checkpoints"
    with pytest.raises(OutputError) as e:
        train()
    assert str(e.value).startswith(f"cannot write {ckpts / 'ckpt-4'}: no space left on the device; the last good checkpoint is {ckpts / 'ckpt-2'}")
    monkeypatch.undo()
    assert run(tiny_cfg(steps=6), tmp_path).start_step == 2  # space freed: resumes from the kept checkpoint

    def model_full(self, path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(keras.Model, "save", model_full)
    with pytest.raises(OutputError, match=f"cannot write {tmp_path / 'model.keras'}: no space left on the device; the last good checkpoint is .*ckpt-6"):
        train()
    assert not (tmp_path / "model.keras").exists() and not list(tmp_path.glob("*.tmp*"))
    # The command line says it in one line, exit 2.
    monkeypatch.setattr(cli, "run_training", lambda job: train())
    assert cli.main(["--recipe", "espcn", "--out", str(tmp_path / "cli"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: cannot write" in err and "Traceback" not in err, err


def test_nonfinite_names_every_saved_part_a_gan_has(tmp_path):
    import keras

    from srkeras.training.checkpoint import TrainingCheckpoint

    def net():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])

    g, d = net(), net()
    g_opt, d_opt = keras.optimizers.Adam(), keras.optimizers.Adam()
    g_opt.build(g.trainable_variables), d_opt.build(d.trainable_variables)
    ema = [keras.Variable(np.zeros((4, 2), np.float32))]
    ckpt = TrainingCheckpoint(tmp_path, generator=g, g_optimizer=g_opt, discriminator=d, d_optimizer=d_opt, ema=ema)
    assert ckpt.nonfinite() == []  # best_psnr's -inf ("no validation yet") is not a divergence
    d_opt.variables[-1].assign(np.full(d_opt.variables[-1].shape, np.nan, np.float32))
    ema[0].assign(np.full((4, 2), np.inf, np.float32))
    assert ckpt.nonfinite() == ["d_optimizer", "ema"]
