"""srkeras.evaluation is the one home of the SR protocol: pipelines.evaluate, the training validation
(metrics.csv, RunState.val, summary.json), the final table of pipelines.train and the Keras metrics
read the same numbers on the same images."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from PIL import Image

from srkeras import evaluation
from srkeras.data import imresize, list_images, load_image
from srkeras.data.dataset import load_validation
from srkeras.metrics import psnr, ssim
from tests._shared import shared_dir

_yy, _xx = np.mgrid[0:40, 0:44] / 40.0


def _photo(i: int) -> np.ndarray:
    return np.stack([0.5 + 0.4 * np.sin(3 * _xx + i), 0.5 + 0.4 * np.cos(2 * _yy - i), 0.5 + 0.3 * np.sin(2 * (_xx + _yy))], -1)


def _val_folder(tmp_path):
    """Two colour images and a grey one (odd sizes, so modcrop matters), as 8-bit PNGs."""
    d = tmp_path / "val"
    d.mkdir()
    for i in range(2):
        Image.fromarray(np.round(_photo(i)[:39, :43] * 255).astype(np.uint8)).save(d / f"rgb{i}.png")
    grey = np.round((0.5 + 0.4 * np.sin(4 * _xx * _yy + 1.0))[:37, :41] * 255).astype(np.uint8)
    Image.fromarray(grey, mode="L").save(d / "grey.png")
    return d


# ---- the protocol functions ----------------------------------------------------------------------


def test_prepare_keeps_grey_and_is_idempotent():
    rng = np.random.default_rng(0)
    grey = rng.random((37, 41))
    pair = evaluation.prepare(grey, 3)
    assert pair.hr.shape == (36, 39, 1) and pair.lr.shape == (12, 13, 1)
    assert pair.hr.dtype == pair.lr.dtype == np.float32
    np.testing.assert_array_equal(pair.hr * 255, np.round(pair.hr * 255))
    again = evaluation.prepare(pair.hr, 3)
    np.testing.assert_array_equal(again.hr, pair.hr)
    np.testing.assert_array_equal(again.lr, pair.lr)


def test_too_small_follows_min_hr_side_in_prepare_and_load_validation(tmp_path):
    s = 4
    side = -(-evaluation.min_hr_side(s) // s) * s  # the smallest usable side; one less crops to side - s
    ok, small = np.zeros((side + 3, side, 3)), np.zeros((side + 3, side - 1, 3))
    evaluation.prepare(ok, s)
    with pytest.raises(evaluation.ImageTooSmall, match=r"small: too small for x4"):
        evaluation.prepare(small, s, name="small")
    images, skipped = load_validation({"ok": ok, "small": small}, s)
    assert [n for n, _ in images] == ["ok"] and len(skipped) == 1 and "small" in skipped[0]


def test_load_validation_holds_images_as_evaluate_does(tmp_path):
    d = _val_folder(tmp_path)
    images, skipped = load_validation(d, 2)
    assert not skipped and [n for n, _ in images] == ["grey", "rgb0", "rgb1"]
    for (_, hr), f in zip(images, list_images(d)):
        np.testing.assert_array_equal(hr, evaluation.prepare(load_image(f, channels=None), 2).hr)
    assert images[0][1].shape == (36, 40, 1)  # grey stays grey: scored on its own values, not on Y


def test_score_does_not_depend_on_float_width():
    rng = np.random.default_rng(1)
    pair = evaluation.prepare(rng.random((48, 48, 3)), 2)
    sr = evaluation.classical_sr(pair.lr, 2)
    a = evaluation.score(sr.astype(np.float32), pair.hr, 2)
    b = evaluation.score(sr, pair.hr.astype(np.float64), 2)
    assert a == b
    sr8 = evaluation.to_8bit(sr)
    assert a == {"psnr": psnr(sr8, pair.hr, 2), "ssim": ssim(sr8, pair.hr, 2)}


# ---- the Keras metrics read the protocol's numbers -----------------------------------------------


def _keras_scores(hr8, sr, scale, **kw):
    from srkeras.metrics import PSNR, SSIM

    p, s = PSNR(crop_border=scale, **kw), SSIM(crop_border=scale, **kw)
    p.update_state(hr8[None], sr[None])
    s.update_state(hr8[None], sr[None])
    return float(p.result()), float(s.result())


@pytest.mark.parametrize("dataset, scale", [("Set5", 4), ("Set14", 2)])
def test_keras_metrics_equal_the_protocol_on_real_images(dataset, scale):
    files = list_images(shared_dir(dataset))
    if dataset == "Set14":  # the grey one and a colour one
        files = [f for f in files if f.stem in ("bridge", "lenna")]
    for f in files:
        pair = evaluation.prepare(load_image(f, channels=None), scale, name=f.stem)
        sr_float = np.clip(imresize(pair.lr, float(scale)), 0, 1).astype(np.float32)
        sr8 = evaluation.to_8bit(sr_float)
        ref = evaluation.score(sr_float, pair.hr, scale)
        # Float SR against the 8-bit HR: the metric quantises SR and rounds Y as the protocol does.
        kp, ks = _keras_scores(pair.hr, sr_float, scale)
        assert kp == pytest.approx(ref["psnr"], abs=2e-4) and ks == pytest.approx(ref["ssim"], abs=2e-5), f.stem
        # 8-bit SR and HR: equal to srkeras.metrics.psnr / ssim.
        kp, ks = _keras_scores(pair.hr, sr8, scale)
        assert kp == pytest.approx(psnr(sr8, pair.hr, scale), abs=2e-4), f.stem
        assert ks == pytest.approx(ssim(sr8, pair.hr, scale), abs=2e-5), f.stem
        if pair.hr.shape[-1] == 3:  # the old metric (no 8-bit steps) reads measurably differently
            _, ks_float = _keras_scores(pair.hr, sr8, scale, eight_bit=False)
            assert abs(ks_float - ref["ssim"]) > 2e-4
            assert ks_float == pytest.approx(ssim(sr8, pair.hr, scale, round_y=False), abs=2e-5)


def test_keras_metrics_apply_8bit_steps_per_image_by_reference():
    rng = np.random.default_rng(2)
    hr8 = evaluation.to_8bit(rng.random((2, 24, 24, 3)))
    hr_float = rng.random((24, 24, 3)).astype(np.float32)
    hr = np.stack([hr8[0], hr_float])
    sr = np.clip(hr + rng.normal(0, 0.05, hr.shape), 0, 1).astype(np.float32)
    from srkeras.metrics import psnr_batch

    got = np.asarray(psnr_batch(hr, sr, 2))
    assert got[0] == pytest.approx(evaluation.score(sr[0], hr[0], 2)["psnr"], abs=2e-4)
    assert got[1] == pytest.approx(psnr(sr[1], hr[1], 2, round_y=False), abs=2e-4)
    forced = np.asarray(psnr_batch(hr, sr, 2, eight_bit=True))
    assert forced[1] == pytest.approx(evaluation.score(sr[1], hr[1], 2)["psnr"], abs=2e-4)


# ---- acceptance: validation during training == pipelines.evaluate on the exported model -------------


def _mean_row(table: str):
    row = next(line for line in table.splitlines() if line.startswith("mean"))
    return [float(v) for v in re.findall(r"-?\d+\.\d+", row)]


@pytest.mark.parametrize("channels, ema", [(1, False), (3, True)], ids=["y_only", "rgb_ema"])
def test_training_validation_equals_evaluate(tmp_path, channels, ema):
    pytest.importorskip("tensorflow")
    from pipelines import evaluate
    from srkeras import inference
    from srkeras.recipes import Recipe
    from srkeras.training.job import comparison_table
    from srkeras.training.runner import train

    val_dir = _val_folder(tmp_path)
    cfg = {
        "recipe": {"name": "tiny_espcn", "kind": "supervised"},
        "model": {"name": "espcn", "scale": 2, "options": {"channels": channels, "n1": 8, "n2": 8}},
        "data": {"hr_patch": 16, "batch": 4, "degradation": "bicubic", "augment": True},
        "train": {"steps": 6, "checkpoint_every": 1000, "val_every": 3, "log_every": 3, "seed": 0, "ema": ema, "ema_decay": 0.5},
        "optimizer": {"name": "adam", "lr": 3e-3},
        "schedule": {"kind": "constant"},
        "loss": {"terms": [{"name": "mse", "weight": 1.0}]},
        "run": {"strategy": "default"},
    }
    train_images = {f"p{i}": _photo(i).astype(np.float32) for i in range(3)}
    run_dir = tmp_path / "run"
    summary = train(Recipe.from_dict(cfg), run_dir, train_images, val_dir, progress=False, log=lambda *a: None)
    val = summary["val"]

    out = tmp_path / "eval.json"
    rc = evaluate.main(["--hr-dir", str(val_dir), "--scale", "2", "--method", "bicubic", "--model", str(run_dir / "model.keras"),
                        "--name", "m", "--out", str(out), "--quiet"])
    assert rc == 0
    res = json.loads(out.read_text())["methods"]
    assert res["m"]["n_images"] == 3
    print(f"{channels}-channel model, ema={ema}: validation {val}, evaluate psnr {res['m']['psnr']} ssim {res['m']['ssim']}")
    assert val["psnr"] == pytest.approx(res["m"]["psnr"], abs=1e-9)
    assert val["ssim"] == pytest.approx(res["m"]["ssim"], abs=1e-9)
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    last = [r for r in rows if r["val_psnr"]][-1]
    assert int(last["step"]) == 6
    assert float(last["val_psnr"]) == pytest.approx(res["m"]["psnr"], abs=1e-4)
    assert float(last["val_ssim"]) == pytest.approx(res["m"]["ssim"], abs=1e-5)

    # The Keras metrics on the same images (float model output against the 8-bit HR).
    from srkeras.metrics import PSNR, SSIM

    model = inference.load_generator(run_dir / "model.keras")
    kp, ks = PSNR(crop_border=2), SSIM(crop_border=2)
    for name, hr in load_validation(val_dir, 2)[0]:
        pair = evaluation.prepare(hr, 2, name=name)
        sr = evaluation.super_resolve(model, pair.lr, 2)
        kp.update_state(pair.hr[None], sr[None])
        ks.update_state(pair.hr[None], sr[None])
    assert float(kp.result()) == pytest.approx(res["m"]["psnr"], abs=2e-4)
    assert float(ks.result()) == pytest.approx(res["m"]["ssim"], abs=2e-5)

    # The final table of pipelines.train: bicubic and model means, 2 decimals / 4 decimals.
    bp, bs, mp, ms, _ = _mean_row(comparison_table(run_dir / "model.keras", val_dir, 2, "bicubic", "t"))
    assert (bp, bs) == (round(res["bicubic"]["psnr"], 2), round(res["bicubic"]["ssim"], 4))
    assert (mp, ms) == (round(res["m"]["psnr"], 2), round(res["m"]["ssim"], 4))
