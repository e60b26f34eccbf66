"""NIQE and BRISQUE (srkeras.metrics) against published / reference values, invariants, bad input.

* NIQE: MATLAB R2021a on Set14 ``baboon.png`` (the Y image) = 5.72957338, as published in
  basicsr 1.4.2's ``calculate_niqe`` docstring; per-image values of basicsr's Python port of the
  MATLAB release (its ``niqe()`` on our MATLAB-``rgb2gray`` image) in reference_values.json.
* BRISQUE: no published per-image values of the MATLAB release could be obtained offline;
  reference_values.json holds the PyPI ``brisque`` 0.2.0 port's ``score()`` (same LIVE model, but
  skimage grey, a root-finder GGD fit and OpenCV's resize instead of MATLAB's), so it is compared
  loosely; see tests/fixtures/metrics/README.md.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from _metric_assets import install
from _shared import shared_dir
from PIL import Image
from scipy import ndimage

FIX = Path(__file__).parent / "fixtures" / "metrics"
REF = json.loads((FIX / "reference_values.json").read_text())
MATLAB_NIQE_BABOON_Y = 5.72957338


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return install(tmp_path_factory, ("niqe", "brisque"))


@pytest.fixture
def use_assets(assets, monkeypatch):
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(assets))


def _img(path):
    return np.asarray(Image.open(path).convert("RGB"))


def _gray(x):
    from srkeras.metrics.inputs import matlab_gray

    return matlab_gray(x.astype(np.float64), quantise=True).astype(np.uint8)


@pytest.mark.registry
def test_niqe_matlab_published_baboon(use_assets):
    from srkeras import metrics
    from srkeras.data.color import rgb_to_y

    x = _img(shared_dir("Set14") / "baboon.png")
    y = np.round(rgb_to_y(x.astype(np.float64) / 255)[..., 0] * 255).astype(np.uint8)
    assert metrics.niqe(y) == pytest.approx(MATLAB_NIQE_BABOON_Y, abs=0.002)


@pytest.mark.registry
def test_niqe_matches_port_of_matlab_release(use_assets):
    from srkeras import metrics

    d = shared_dir("Set14")
    x = _img(d / "comic.png")
    assert metrics.niqe(x) == metrics.niqe(_gray(x))  # colour goes through MATLAB rgb2gray (computequality.m)
    for stem in ("comic", "zebra", "lenna"):
        assert metrics.niqe(_img(d / f"{stem}.png")) == pytest.approx(REF["niqe"][f"set14_{stem}_hr"], abs=0.002)


@pytest.mark.registry
def test_brisque_near_reference_port(use_assets):
    from srkeras import metrics

    for stem in ("ref", "blur", "noise"):
        got = metrics.brisque(_img(FIX / f"{stem}.png"))
        assert got == pytest.approx(REF["brisque"][f"fix_{stem}"], abs=REF["brisque_tolerance"]), stem


def _blur(x, s):
    if s == 0:
        return x
    return np.clip(np.round(np.stack([ndimage.gaussian_filter(x[..., c].astype(float), s) for c in range(3)], -1)),
                   0, 255).astype(np.uint8)


def _jpeg(x, q):
    b = io.BytesIO()
    Image.fromarray(x).save(b, "JPEG", quality=q)
    return _img(b)


@pytest.mark.registry
@pytest.mark.parametrize("metric", ["niqe", "brisque"])
def test_rise_with_blur_and_jpeg_on_set14(metric, use_assets):
    """Set14 mean rises at every step of blur sigma (0, 1, 2, 3) and of JPEG quality (90, 50, 20, 10)
    going down; every image scores worse at the strongest than at no distortion."""
    from srkeras import metrics

    fn = getattr(metrics, metric)
    d = shared_dir("Set14")
    blur, jpeg = [], []
    for f in sorted(d.glob("*.png"))[::3]:  # 5 of the 14 images keep the test fast
        x = _img(f)
        blur.append([fn(_blur(x, s)) for s in (0, 1, 2, 3)])
        jpeg.append([fn(_jpeg(x, q)) for q in (90, 50, 20, 10)])
    blur, jpeg = np.array(blur), np.array(jpeg)
    assert (np.diff(blur.mean(0)) > 0).all(), blur
    assert (blur[:, -1] > blur[:, 0]).all() and (jpeg[:, -1] > jpeg[:, 0]).all(), (blur, jpeg)
    assert jpeg.mean(0)[-1] > jpeg.mean(0)[-2] > jpeg.mean(0)[0], jpeg


def test_bad_input_names_the_file(tmp_path, monkeypatch):
    from srkeras import metrics
    from srkeras.pretrained import MissingAssetError

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path))
    x = _img(FIX / "ref.png")
    with pytest.raises(ValueError, match=r"small.png: 96x150 image is smaller than NIQE needs"):
        metrics.niqe(x[:96, :150], name="small.png")
    with pytest.raises(ValueError, match=r"tiny.png: 10x10 image is smaller than the 14x14 BRISQUE"):
        metrics.brisque(x[:10, :10], name="tiny.png")
    with pytest.raises(ValueError, match=r"odd.png: expected an HxWx3"):
        metrics.brisque(np.zeros((32, 32, 2), np.uint8), name="odd.png")
    with pytest.raises(TypeError, match=r"img: expected a uint8"):
        metrics.niqe(x.astype(np.int32))
    with pytest.raises(MissingAssetError, match=r"python -m pipelines\.pretrained fetch brisque"):
        metrics.brisque(x)
    with pytest.raises(MissingAssetError, match=r"python -m pipelines\.pretrained fetch niqe"):
        metrics.niqe(np.tile(x, (2, 2, 1)))


def test_brisque_svm_matches_libsvm_formula():
    """The RBF decision function evaluated from the support vectors, on a toy libsvm model file."""
    from srkeras.metrics.noref import brisque_score_features
    from srkeras.pretrained.metric_assets import parse_libsvm

    text = ("svm_type epsilon_svr\nkernel_type rbf\ngamma 0.5\nnr_class 2\ntotal_sv 2\nrho -1.5\nSV\n"
            "2 1:0.5 3:-1\n-1 2:0.25\n")
    m = parse_libsvm(text, "toy")
    m.update(range_min=np.zeros(36), range_max=np.full(36, 2.0))
    f = np.ones(36)  # scales to 0
    want = 2 * np.exp(-0.5 * (0.25 + 1)) - 1 * np.exp(-0.5 * 0.0625) + 1.5
    assert brisque_score_features(f, m) == pytest.approx(want, abs=1e-12)
