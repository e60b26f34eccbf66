"""``pipelines.study backbones``: the smoke chain end to end (train, score, register, simulated
ratings, report), resume after a kill, the depth table and the weights policy."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines import report as report_cli
from pipelines import study as cli
from srkeras.study import DEPTH_TABLE, StudyConfig, StudyConfigError, entries, tap
from srkeras.study.errors import NoBackbones

ROOT = Path(__file__).resolve().parents[1]
PREFERRED = "srgan_vgg16_torch-deep"
BACKBONES = ("vgg16_torch", "vgg19")


def _image(rng, h, w):
    """A smooth colour pattern with some edges (so SR has something to do)."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    f = rng.uniform(2, 9, size=(3, 2))
    img = np.stack([0.5 + 0.35 * np.sin(2 * np.pi * (f[c, 0] * x + f[c, 1] * y) + c) for c in range(3)], -1)
    img[h // 3: h // 2, w // 4: w // 2] *= 0.4
    return np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("study-data")
    rng = np.random.default_rng(0)
    for folder, n, (h, w) in (("train", 4, (48, 48)), ("val", 1, (32, 32)), ("SetA", 3, (48, 48)), ("SetB", 3, (40, 48))):
        (root / folder).mkdir()
        for i in range(n):
            Image.fromarray((_image(rng, h, w) * 255).round().astype(np.uint8)).save(root / folder / f"{folder}{i}.png")
    return root


@pytest.fixture(scope="module")
def lpips_assets(tmp_path_factory):
    from srkeras.pretrained import metric_assets

    needed = ("lpips_alex", "vgg16_imagenet")  # LPIPS column; torchvision VGG16 of the vgg16_torch backbone
    if all(metric_assets.is_installed(n) for n in needed):
        yield
        return
    from tests._metric_assets import install

    d = install(tmp_path_factory, needed)
    old = os.environ.get("SRKERAS_MODEL_DIR")
    os.environ["SRKERAS_MODEL_DIR"] = str(d)
    yield
    os.environ.pop("SRKERAS_MODEL_DIR") if old is None else os.environ.__setitem__("SRKERAS_MODEL_DIR", old)


def argv(data: Path, out: Path, *extra, steps=3) -> list[str]:
    a = ["backbones", "--train-dir", str(data / "train"), "--val-dir", str(data / "val"),
         "--test-dir", str(data / "SetA"), "--test-dir", str(data / "SetB"), "--steps", str(steps),
         "--pretrain-steps", "2", "--out", str(out), "--smoke", "--quiet", "--metric", "psnr", "--metric", "ssim",
         "--metric", "lpips"]
    for b in BACKBONES:
        a += ["--backbone", b]
    return a + list(extra)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------------
# the smoke chain, end to end
# ------------------------------------------------------------------------------------------------


def test_smoke_chain_end_to_end(data, tmp_path, lpips_assets, capsys):
    out, url = tmp_path / "study", f"sqlite:///{tmp_path / 'mos.db'}"
    t0 = time.monotonic()
    assert cli.main(argv(data, out, "--db", url, "--study-name", "bb", "--votes-per-stimulus", "12")) == 0
    printed = capsys.readouterr().out
    assert "cost plan" in printed and "total" in printed and "RANDOM" in printed
    # 1-2: one start and one SRGAN per backbone, each a trained generator
    manifest = json.loads((out / "study.json").read_text())
    methods = ["srresnet_mse", PREFERRED, "srgan_vgg19-deep_random"]
    assert set(manifest["models"]) == set(methods)
    for m in methods:
        assert Path(manifest["models"][m]).is_file()
    cfg = json.loads((out / "runs" / "vgg19-deep" / "config.json").read_text())
    options = cfg["loss"]["terms"][0]["options"]
    assert {k: options[k] for k in ("backbone", "layers")} == {"backbone": "vgg19", "layers": "block5_conv4"}
    assert options["feature_scale"] > 0 and "content loss: MSE of features x" in printed
    assert cfg["gan"]["adversarial_weight"] == 1e-3 and cfg["run"]["init_from"].endswith("srresnet_mse/model.keras")
    # 3: every method x test set with PSNR/SSIM/LPIPS, random init labelled
    rows = read_rows(out / "results.csv")
    assert list(rows[0])[:6] == ["backbone", "layer", "dataset", "psnr", "ssim", "lpips"]
    got = {(r["method"], r["dataset"]) for r in rows}
    assert got == {(m, d) for m in ["bicubic", "hr", *methods] for d in ("SetA", "SetB")}
    for r in rows:
        assert all(r[k] not in ("", "nan") for k in ("psnr", "ssim", "lpips")), r
    vgg19 = [r for r in rows if r["backbone"] == "vgg19"]
    assert vgg19 and all(r["weights"] == "random" and r["layer"] == "block5_conv4" for r in vgg19)
    assert "random" in (out / "results.md").read_text()
    # 4: the MOS study: every method's stimuli, anchors hidden as anchors
    from db import open_database, rating_frames, study_methods

    db = open_database(url)
    try:
        mode, roles = study_methods(db, "bb-SetA")
        acr, pairs, metrics = rating_frames(db, "bb-SetA")
    finally:
        db.close()
    assert mode == "both"
    assert roles == {"nearest": "low_anchor", "bicubic": "test", "hr": "high_anchor", **{m: "test" for m in methods}}
    assert set(metrics["method"]) == set(roles) and metrics.groupby("method").size().min() == 2  # 3 images, 1 calibration
    # 5: simulated raters (the preferred backbone planted best) -> the report ranks it first, with its CI
    assert cli.main(["simulate", "--db", url, "--study", "bb-SetA", "--prefer", PREFERRED, "--raters", "12"]) == 0
    rep = tmp_path / "report"
    assert report_cli.main(["--db", url, "--study", "bb-SetA", "--out", str(rep), "--bootstrap", "300", "--quiet"]) == 0
    summary = json.loads((rep / "summary.json").read_text())
    tested = {m: v for m, v in summary["methods"].items() if v["role"] == "test"}
    best = max(tested, key=lambda m: tested[m]["mos"])
    assert best == PREFERRED
    lo, hi = tested[best]["ci95"]
    assert lo <= tested[best]["mos"] <= hi and hi > lo
    assert {"psnr", "ssim"} <= set(tested[best])
    print(f"smoke chain: {time.monotonic() - t0:.0f} s")


# ------------------------------------------------------------------------------------------------
# resume after a kill during the second backbone
# ------------------------------------------------------------------------------------------------


def _kill_during_second(data: Path, out: Path) -> None:
    cmd = [sys.executable, "-m", "pipelines.study", *argv(data, out, "--checkpoint-every", "1", steps=12)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    marker = out / "runs" / "vgg19-deep" / "checkpoints" / "checkpoint"
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, "the study ended before its second backbone was checkpointed"
            assert time.monotonic() < deadline, "timed out waiting for the second backbone"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_resume_after_kill_keeps_the_first_backbone(data, tmp_path, lpips_assets, capsys):
    out = tmp_path / "study"
    _kill_during_second(data, out)
    state = json.loads((out / "state.json").read_text())
    assert "train:vgg16_torch-deep" in state["done"] and "train:vgg19-deep" not in state["done"]
    first = out / "runs" / "vgg16_torch-deep"
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(first.rglob("*")) if p.is_file()}
    assert cli.main(argv(data, out, "--checkpoint-every", "1", steps=12)) == 0
    printed = capsys.readouterr().out
    assert "[train:vgg16_torch-deep] done earlier" in printed
    assert "resuming from" in printed  # the second backbone continued from its checkpoint
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(first.rglob("*")) if p.is_file()}
    assert after == before  # the first backbone's run folder is untouched
    summary = json.loads((out / "runs" / "vgg19-deep" / "summary.json").read_text())
    assert summary["step"] == 12 and summary["steps_this_run"] < 12
    scores = sorted((out / "scores").rglob("*.csv"))
    stamps = {p: p.stat().st_mtime_ns for p in scores}
    # finished: the same command again re-trains and re-scores nothing
    assert cli.main(argv(data, out, "--checkpoint-every", "1", steps=12)) == 0
    printed = capsys.readouterr().out
    assert "] scoring" not in printed and "training into" not in printed
    assert {p: p.stat().st_mtime_ns for p in scores} == stamps


# ------------------------------------------------------------------------------------------------
# depth table, weights policy, arguments
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vgg19", "resnet50", "inception_v3"])
def test_depth_table_layers_exist_at_their_stride(name):
    import keras

    from srkeras.losses.backbones import BACKBONES
    from srkeras.losses.features import layer_name

    model = getattr(keras.applications, BACKBONES[name].constructor)(include_top=False, weights=None,
                                                                    input_shape=(256, 256, 3))
    for depth in ("deep", "shallow"):
        t = tap(name, depth)
        layer = model.get_layer(layer_name(model, t.layer))
        assert len(model.layers) == t.layers and model.layers[t.index] is layer
        assert abs(256 / layer.output.shape[1] - t.stride) / t.stride < 0.25, (name, depth, layer.output.shape)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DEPTH_TABLE))
def test_every_depth_table_row(name):
    test_depth_table_layers_exist_at_their_stride(name)


def test_inception_position_tap_gives_a_perceptual_loss():
    from srkeras.losses import perceptual_loss

    loss = perceptual_loss("srgan_content", weights=None, backbone="inception_v3", layers=tap("inception_v3", "shallow").layer)
    assert loss.extractor.taps[0][0].startswith("activation")
    x = np.random.default_rng(0).uniform(size=(1, 80, 80, 3)).astype("float32")
    # y_true and y_pred go through the network as one batch; oneDNN's AVX2 kernels may round the two
    # batch items differently, so "identical images" means a loss at float rounding, not exactly 0.
    apart = float(loss(x, x[:, ::-1]))
    assert apart > 0 and abs(float(loss(x, x))) <= 1e-9 * apart


def test_missing_weights_skip_or_random(data, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))
    cfg = dict(train_dirs=(data / "train",), val_dir=None, test_dirs=(data / "SetA",), steps=1, out=tmp_path / "o")
    with pytest.raises(NoBackbones, match="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        entries(StudyConfig(backbones=("vgg19",), **cfg))
    smoke = entries(StudyConfig(backbones=("vgg19", "resnet152v2:shallow"), smoke=True, **cfg))
    assert [(e.id, e.weights, e.weights_label, e.method) for e in smoke] == [
        ("vgg19-deep", None, "random", "srgan_vgg19-deep_random"),
        ("resnet152v2-shallow", None, "random", "srgan_resnet152v2-shallow_random"),
    ]
    fake = tmp_path / "w"
    fake.mkdir()
    (fake / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"x")
    got = entries(StudyConfig(backbones=("vgg19", "densenet201"), weights_dir=fake, **cfg))
    assert got[0].weights == str((fake / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5").resolve())
    assert got[1].skipped and "densenet201_weights" in got[1].skipped
    with pytest.raises(StudyConfigError, match="unknown backbone"):
        entries(StudyConfig(backbones=("alexnet",), **cfg))
    with pytest.raises(StudyConfigError, match="depth"):
        entries(StudyConfig(backbones=("vgg19:middle",), smoke=True, **cfg))


def test_other_settings_refused_and_layers_command(data, tmp_path, capsys):
    from srkeras.study.state import StudyState

    StudyState(tmp_path, {"steps": 3})
    with pytest.raises(StudyConfigError, match="steps differ"):
        StudyState(tmp_path, {"steps": 4})
    assert cli.main(["layers"]) == 0
    table = capsys.readouterr().out
    assert "conv4_block36_preact_relu" in table and "VGG54" in table and "VGG22" in table


def test_cost_from_macs(capsys):
    import keras

    from srkeras.study.cost import StepCost, model_macs

    x = keras.Input((10, 10, 3))
    m = keras.Model(x, keras.layers.Dense(4)(keras.layers.Conv2D(8, 3, padding="same")(x)))
    assert model_macs(m) == 3 * 3 * 3 * 8 * 100 + 8 * 4 * 100
    c = StepCost(generator=10, backbone=100, discriminator=1)
    assert c.gan_step_flops(2) == 2.0 * (3 * 2 * 10 + 6 * 100 + 6 * 2 + 2 * 2) and c.mse_step_flops(2) == 120.0
    assert cli.main(["cost", "--backbone", "vgg19", "--backbone", "vgg19:shallow", "--tflops", "30"]) == 0
    rows = {line.split()[0]: float(line.split()[1]) for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert set(rows) == {"srresnet_mse", "vgg19-deep", "vgg19-shallow"}
    assert rows["vgg19-deep"] > rows["vgg19-shallow"] > rows["srresnet_mse"] > 100  # GFLOP per step


def test_reusing_a_trained_start(data, tmp_path):
    from srkeras.study.backbones import train_all
    from srkeras.study.state import StudyState

    cfg = dict(train_dirs=(data / "train",), val_dir=None, test_dirs=(data / "SetA",), backbones=("vgg19",), steps=1)
    with pytest.raises(StudyConfigError, match="--start"):
        StudyConfig(out=tmp_path / "a", start=tmp_path / "nothing", **cfg)
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"x")
    c = StudyConfig(out=tmp_path / "b", start=run, **cfg)
    assert c.fingerprint()["start"] == str((run / "model.keras").resolve())
    logs = []
    assert train_all(c, StudyState(c.out, c.fingerprint()), [], logs.append) == {"srresnet_mse": run / "model.keras"}
    assert not (tmp_path / "b" / "runs").exists() and "reusing" in logs[0]


@pytest.mark.parametrize("text", ['{"settings": {"steps": 3}, "do', "", "[1, 2]"])
def test_a_truncated_or_damaged_state_file_is_an_error_naming_it(tmp_path, text):
    from srkeras.study.state import StudyState

    (tmp_path / "state.json").write_text(text)
    with pytest.raises(StudyConfigError, match=f"{tmp_path / 'state.json'}: cannot read the study state .*another --out"):
        StudyState(tmp_path, {"steps": 3})
    assert (tmp_path / "state.json").read_text() == text  # kept as it was, for the user to look at


@pytest.mark.parametrize("flag, value", [("--tflops", "0"), ("--tflops", "-2"), ("--tflops", "nan"), ("--batch-size", "0")])
def test_cost_refuses_impossible_numbers_before_any_work(capsys, flag, value):
    with pytest.raises(SystemExit) as e:
        cli.main(["cost", "--backbone", "vgg19", flag, value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {flag}: {value} is not allowed" in err and "Traceback" not in err, err
