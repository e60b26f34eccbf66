"""Training layer: recipes, trainers (supervised, GAN with RaGAN), EMA, runner outputs, time budget,
NaN guard, two-stage initialisation and the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from srkeras import losses, models, recipes  # noqa: E402
from srkeras.recipes import Recipe  # noqa: E402
from srkeras.training.runner import NonFiniteError, Run, TrainingError, train  # noqa: E402

RNG = np.random.default_rng(0)
# Smooth images (a learnable signal) so a few steps measurably beat the untrained network.
_yy, _xx = np.mgrid[0:48, 0:48] / 48.0
IMAGES = {f"p{i}": np.stack([0.5 + 0.4 * np.sin(3 * _xx + i), 0.5 + 0.4 * np.cos(2 * _yy - i), 0.5 + 0.3 * np.sin(2 * (_xx + _yy))], -1).astype(np.float32) for i in range(4)}


def quiet(*a):
    pass


def espcn_cfg(steps=20, **train):
    return {
        "recipe": {"name": "tiny_espcn", "kind": "supervised"},
        "model": {"name": "espcn", "scale": 2, "options": {"channels": 1, "n1": 8, "n2": 8}},
        "data": {"hr_patch": 16, "batch": 8, "degradation": "bicubic", "augment": True},
        "train": {"steps": steps, "checkpoint_every": 10, "val_every": 10, "log_every": 5, "seed": 0, **train},
        "optimizer": {"name": "adam", "lr": 3e-3},
        "schedule": {"kind": "constant"},
        "loss": {"terms": [{"name": "mse", "weight": 1.0}]},
        "run": {"strategy": "default"},
    }


def gan_cfg(steps=2, adversarial="ragan"):
    cfg = espcn_cfg(steps)
    cfg["recipe"] = {"name": "tiny_gan", "kind": "gan"}
    cfg["model"] = {"name": "srresnet", "scale": 2, "options": {"num_blocks": 1, "num_features": 8}}
    cfg["gan"] = {"discriminator": "srgan_discriminator", "d_options": {"num_features": 8}, "adversarial": adversarial, "adversarial_weight": 5e-3}
    cfg["loss"] = {"terms": [{"name": "l1", "weight": 1e-2}]}
    return cfg


# ---- recipes ------------------------------------------------------------------------------------


def test_every_recipe_names_known_models_and_losses():
    expected = {"srcnn", "espcn", "srresnet_mse", "srgan_vgg54", "srgan_vgg22", "srgan_mse", "rrdb_psnr", "esrgan", "johnson_sr"}
    assert expected <= set(recipes.names())
    for name in expected:
        for profile in ("default", "paper"):
            cfg = recipes.load(name, profile)
            assert cfg["model"]["name"] in models.names("generator")
            assert cfg["recipe"]["kind"] in ("supervised", "gan")
            for t in cfg["loss"]["terms"]:
                assert t["name"] in ("mse", "l1", "tv") or t["name"] in losses.PRESETS
            if cfg["recipe"]["kind"] == "gan":
                assert cfg["gan"]["discriminator"] in models.names("discriminator")
                assert cfg["recipe"]["init_from"] in recipes.names()


def test_paper_values_of_the_gan_recipes():
    s = recipes.load("srgan_vgg54")
    assert (s["gan"]["adversarial"], s["gan"]["adversarial_weight"], s["data"]["hr_patch"], s["data"]["batch"]) == ("standard", 1e-3, 96, 16)
    assert s["schedule"]["milestones"] == [100000] and s["train"]["steps"] == 200000
    e = recipes.load("esrgan")
    # Paper lambda = 5e-3 on the authors' averaged RaGAN terms == 2.5e-3 on our summed eq. 2.
    assert (e["gan"]["adversarial"], e["gan"]["adversarial_weight"]) == ("ragan", 2.5e-3)
    assert {t["name"]: t["weight"] for t in e["loss"]["terms"]} == {"vgg54_preact": 1.0, "l1": 1e-2}
    assert e["train"]["ema"] and e["train"]["ema_decay"] == 0.999
    p = recipes.load("espcn", "paper")
    assert p["optimizer"]["name"] == "sgd" and p["optimizer"]["lr"] == 0.01


def test_overrides_parse_toml_values():
    cfg = recipes.apply_overrides(recipes.load("espcn"), ["optimizer.lr=5e-4", "data.augment=true", "schedule.milestones=[10, 20]", "x.y=word"])
    assert cfg["optimizer"]["lr"] == 5e-4 and cfg["data"]["augment"] is True
    assert cfg["schedule"]["milestones"] == [10, 20] and cfg["x"]["y"] == "word"
    with pytest.raises(ValueError, match="key.path=value"):
        recipes.apply_overrides(cfg, ["nonsense"])


def test_cli_resolution_of_patch_sizes_and_flags():
    from pipelines.train import parse_args, recipe_from_args

    cfg = recipe_from_args(parse_args(["--recipe", "espcn", "--profile", "paper", "--scale", "4", "--lr", "1e-4", "--set", "train.ema=true"])).config
    assert cfg["data"]["hr_patch"] == 17 * 4  # the paper's 17x17 LR sub-images
    assert cfg["model"]["options"]["activation"] == "tanh"
    assert recipe_from_args(parse_args(["--recipe", "espcn", "--scale", "4"])).config["data"]["hr_patch"] == 24 * 4  # CPU default
    assert cfg["optimizer"]["lr"] == 1e-4 and cfg["train"]["ema"] is True
    cfg = recipe_from_args(parse_args(["--recipe", "espcn", "--patch-size", "30"])).config
    assert cfg["data"]["hr_patch"] == 30


# ---- adversarial loss under distribution ----------------------------------------------------------


def test_ragan_surrogate_has_the_gradients_of_esrgan_eq_1_2():
    from srkeras.training.gan import ragan_losses

    real = tf.constant(RNG.normal(size=(6, 1)), tf.float32)
    fake = tf.constant(RNG.normal(size=(6, 1)), tf.float32)
    with tf.GradientTape(persistent=True) as t:
        t.watch([real, fake])
        g, d, g_sur, d_sur = ragan_losses(real, fake)
        g_ref = losses.generator_loss("ragan", real, fake)
        d_ref = losses.discriminator_loss("ragan", real, fake)
    np.testing.assert_allclose([float(g), float(d)], [float(g_ref), float(d_ref)], rtol=1e-6)
    for ours, ref in ((d_sur, d_ref), (g_sur, g_ref)):
        a = t.gradient(ours, [real, fake], unconnected_gradients="zero")
        b = t.gradient(ref, [real, fake], unconnected_gradients="zero")
        for x, y in zip(a, b):
            np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-7)


# ---- runs ------------------------------------------------------------------------------------------


def test_supervised_run_writes_everything_and_improves(tmp_path):
    val = {k: v for k, v in list(IMAGES.items())[:2]}
    run = Run(Recipe.from_dict(espcn_cfg(steps=60)), tmp_path, IMAGES, val, progress=False, log=quiet)
    run.setup()
    from srkeras.training.callbacks import validate

    before, _ = validate(run.generator, run.val_images, 2)
    summary = run.train()
    assert summary["step"] == 60 and summary["optimizer_iterations"] == 60 and summary["stop_reason"] == "steps"
    assert summary["val"]["psnr"] > before["psnr"] + 3  # training happened and is scored on Y
    for f in ("config.json", "model.keras", "best.keras", "best.json", "metrics.csv", "summary.json"):
        assert (tmp_path / f).is_file(), f
    assert json.loads((tmp_path / "config.json").read_text())["model"]["name"] == "espcn"
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] == 60
    assert rows[-1]["val_psnr"] and float(rows[-1]["val_psnr"]) == pytest.approx(summary["val"]["psnr"], abs=1e-3)
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["psnr"] == pytest.approx(summary["best_val_psnr"])
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("ckpt-*.index")) == ["ckpt-40.index", "ckpt-50.index", "ckpt-60.index"]
    # TensorBoard: scalars and the LR | SR | HR image grid.
    events = list((tmp_path / "tensorboard").glob("events.*"))
    tags = set()
    for e in events:
        for rec in tf.compat.v1.train.summary_iterator(str(e)):
            tags |= {v.tag for v in rec.summary.value}
    assert {"train/loss", "train/learning_rate", "val/psnr", "val/lr_sr_hr"} <= tags
    # The export is the generator: NHWC, Y-only, x2, loads without the training code.
    m = keras.models.load_model(tmp_path / "model.keras", compile=False)
    assert m(np.zeros((1, 7, 9, 1), np.float32)).shape == (1, 14, 18, 1)
    np.testing.assert_allclose(m.get_weights()[0], run.generator.get_weights()[0])


def test_time_budget_stops_and_finishes_like_the_end(tmp_path):
    cfg = espcn_cfg(steps=10**6)
    cfg["run"]["max_minutes"] = 0.08  # ~5 s
    summary = train(Recipe.from_dict(cfg), tmp_path, IMAGES, progress=False, log=quiet)
    assert summary["stop_reason"] == "time" and 0 < summary["step"] < 10**6
    assert (tmp_path / "model.keras").is_file()
    assert (tmp_path / "checkpoints" / f"ckpt-{summary['step']}.index").is_file()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    run = Run(Recipe.from_dict(espcn_cfg(steps=50, checkpoint_every=2)), tmp_path, IMAGES, progress=False, log=quiet)
    run.setup()
    counter = keras.Variable(0.0, trainable=False)

    def poison(y_true, y_pred):  # finite for 5 steps, then NaN
        counter.assign_add(1.0)
        return tf.where(counter > 5.0, tf.constant(np.nan), 0.0)

    run.trainer.loss_terms.terms.append(("poison", poison, 1.0))
    with pytest.raises(NonFiniteError, match="step 6.*ckpt-4"):
        run.train()
    assert not (tmp_path / "model.keras").exists()
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith("ckpt-4")
    reader = tf.train.load_checkpoint(latest)
    assert all(np.all(np.isfinite(reader.get_tensor(k))) for k in reader.get_variable_to_shape_map() if "generator" in k)


def test_ema_is_exported(tmp_path):
    cfg = espcn_cfg(steps=5)
    cfg["train"].update(ema=True, ema_decay=0.5)
    run = Run(Recipe.from_dict(cfg), tmp_path, IMAGES, progress=False, log=quiet)
    run.setup()
    w0 = [np.array(v) for v in run.generator.trainable_weights]
    shadow = [w.copy() for w in w0]
    # Reproduce shadow <- d*shadow + (1-d)*w after each step with the weights after that step.
    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            for i, v in enumerate(run.generator.trainable_weights):
                shadow[i] = 0.5 * shadow[i] + 0.5 * np.array(v)

    orig_fit = run.trainer.fit
    run.trainer.fit = lambda *a, callbacks=(), **k: orig_fit(*a, callbacks=[Record(), *callbacks], **k)
    run.train()
    exported = keras.models.load_model(tmp_path / "model.keras", compile=False)
    for e, s in zip(exported.trainable_weights, shadow):
        np.testing.assert_allclose(np.array(e), s, atol=1e-6)
    assert not np.allclose(np.array(exported.trainable_weights[0]), np.array(run.generator.trainable_weights[0]))


def test_gan_run_and_two_stage_initialisation(tmp_path):
    cfg = gan_cfg(steps=2)
    cfg["recipe"]["init_from"] = "srresnet_mse"
    with pytest.raises(TrainingError, match="--init-from"):
        train(Recipe.from_dict(cfg), tmp_path / "gan0", IMAGES, progress=False, log=quiet)
    with pytest.raises(TrainingError, match="no such model file"):
        cfg["run"]["init_from"] = str(tmp_path / "missing")
        train(Recipe.from_dict(cfg), tmp_path / "gan1", IMAGES, progress=False, log=quiet)
    # Stage 1: supervised SRResNet; stage 2 starts from its export.
    first = gan_cfg(steps=2)
    first["recipe"] = {"name": "tiny_srresnet", "kind": "supervised"}
    del first["gan"]
    train(Recipe.from_dict(first), tmp_path / "stage1", IMAGES, progress=False, log=quiet)
    cfg["run"]["init_from"] = str(tmp_path / "stage1")
    run = Run(Recipe.from_dict(cfg), tmp_path / "stage2", IMAGES, progress=False, log=quiet)
    run.setup()
    src = keras.models.load_model(tmp_path / "stage1" / "model.keras", compile=False)
    for a, b in zip(src.get_weights(), run.generator.get_weights()):
        np.testing.assert_array_equal(a, b)
    summary = run.train()
    assert summary["step"] == 2 and int(np.asarray(run.d_optimizer.iterations.numpy())) == 2
    header = next(csv.reader(open(tmp_path / "stage2" / "metrics.csv")))
    assert {"d_loss", "g_adv", "d_real", "d_fake", "l_l1"} <= set(header)


def test_changed_configuration_is_refused_on_resume(tmp_path):
    train(Recipe.from_dict(espcn_cfg(steps=2)), tmp_path, IMAGES, progress=False, log=quiet)
    cfg = espcn_cfg(steps=4)
    cfg["model"]["options"]["n1"] = 16
    with pytest.raises(TrainingError, match="model.options.n1"):
        train(Recipe.from_dict(cfg), tmp_path, IMAGES, progress=False, log=quiet)
    assert train(Recipe.from_dict(espcn_cfg(steps=4)), tmp_path, IMAGES, progress=False, log=quiet)["step"] == 4  # more steps is fine


# ---- acceptance: ESPCN on T91 beats bicubic on Set5 (slow, minutes of CPU) -------------------------

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.slow
def test_espcn_t91_beats_bicubic_on_set5(tmp_path, request):
    """Issue 4 acceptance: `--recipe espcn` on T91 at x3 within 10 CPU minutes gains >= 1.3 dB over
    bicubic on Set5 (Y, 3 px shaved), scored by pipelines.evaluate on the exported model."""
    import subprocess
    import sys

    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("minutes of CPU: run with -m slow")
    if not (SHARED / "T91").is_dir() or not (SHARED / "Set5").is_dir():
        pytest.skip(f"{SHARED} (T91, Set5) not available")
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "espcn"
    cmd = [sys.executable, "-m", "pipelines.train", "--recipe", "espcn", "--train-dir", str(SHARED / "T91"),
           "--val-dir", str(SHARED / "Set5"), "--scale", "3", "--max-minutes", "9", "--out", str(out), "--quiet"]
    subprocess.run(cmd, cwd=repo, check=True, timeout=11 * 60)
    from pipelines import evaluate

    assert evaluate.main(["--hr-dir", str(SHARED / "Set5"), "--scale", "3", "--method", "bicubic", "--model", str(out),
                          "--name", "espcn", "--out", str(tmp_path / "set5.json"), "--quiet"]) == 0
    res = json.loads((tmp_path / "set5.json").read_text())["methods"]
    gain = res["espcn"]["psnr"] - res["bicubic"]["psnr"]
    print(f"Set5 x3: bicubic {res['bicubic']['psnr']:.2f} dB, ESPCN {res['espcn']['psnr']:.2f} dB, gain {gain:+.2f} dB")
    assert gain >= 1.3
