"""BT.601 colour conversion and the PSNR/SSIM protocol against hand-computed values."""

import math

import numpy as np
import pytest

from srkeras.data import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from srkeras.metrics import psnr, ssim


@pytest.mark.parametrize(
    "rgb, y255",
    [
        ((0, 0, 0), 16.0),
        ((1, 1, 1), 235.0),
        ((1, 0, 0), 16 + 65.481),
        ((0, 1, 0), 16 + 128.553),
        ((0, 0, 1), 16 + 24.966),
        ((0.5, 0.25, 1.0), 16 + 65.481 * 0.5 + 128.553 * 0.25 + 24.966),
    ],
)
def test_y_of_pure_colours_is_bt601(rgb, y255):
    px = np.array(rgb, dtype=np.float64).reshape(1, 1, 3)
    assert rgb_to_y(px)[0, 0, 0] * 255 == pytest.approx(y255, abs=1e-9)


def test_ycbcr_round_trip_and_grey_has_neutral_chroma():
    rng = np.random.default_rng(0)
    rgb = rng.random((5, 7, 3))
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-12)
    grey = rgb_to_ycbcr(np.full((1, 1, 3), 0.4))
    np.testing.assert_allclose(grey[0, 0, 1:] * 255, [128, 128], atol=1e-9)


def test_keras_ops_y_matches_numpy():
    rng = np.random.default_rng(1)
    rgb = rng.random((2, 4, 4, 3)).astype(np.float32)
    import keras

    got = keras.ops.convert_to_numpy(rgb_to_y(keras.ops.convert_to_tensor(rgb)))
    np.testing.assert_allclose(got, rgb_to_y(rgb), atol=1e-6)


def test_psnr_of_known_mse():
    hr = np.zeros((20, 20, 3))
    sr = hr + 0.1  # MSE = 25.5^2 on the 8-bit scale -> 20 log10(255 / 25.5) = 20 dB
    assert psnr(sr, hr, y_channel=False) == pytest.approx(20.0, abs=1e-9)
    # On Y, a uniform +0.1 in RGB moves Y by 0.1 * 219/255 exactly.
    assert psnr(sr, hr, y_channel=True, round_y=False) == pytest.approx(20 * math.log10(255 / (25.5 * 219 / 255)))
    assert psnr(hr, hr) == float("inf")


def test_border_is_shaved():
    hr = np.zeros((30, 30, 1))
    sr = hr.copy()
    sr[:4, :, :] = 1.0  # errors only inside a 4-pixel border
    assert psnr(sr, hr, crop_border=4) == float("inf")
    assert psnr(sr, hr, crop_border=3) < 30


def test_ssim_identical_is_one_and_bounds():
    rng = np.random.default_rng(2)
    img = rng.random((40, 40, 3))
    assert ssim(img, img, crop_border=4) == pytest.approx(1.0)
    noisy = np.clip(img + rng.normal(0, 0.1, img.shape), 0, 1)
    assert 0 < ssim(noisy, img) < 0.99


def test_ssim_matches_scikit_image_reference():
    # scikit-image with Wang's settings (Gaussian sigma 1.5 -> 11 taps, population covariance,
    # border of 5 cropped = 'valid') is an independent implementation of the same formula.
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    a = rng.random((50, 60, 1))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    ref = structural_similarity(
        a[..., 0] * 255, b[..., 0] * 255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(b, a, y_channel=False) == pytest.approx(ref, abs=1e-6)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))


def test_keras_metrics_match_numpy():
    import keras

    from srkeras.metrics import PSNR, SSIM

    rng = np.random.default_rng(4)
    hr = rng.random((2, 32, 32, 3)).astype(np.float32)
    sr = np.clip(hr + rng.normal(0, 0.05, hr.shape), 0, 1).astype(np.float32)
    m = PSNR(crop_border=2)
    m.update_state(hr, sr)
    ref = np.mean([psnr(sr[i], hr[i], 2, round_y=False) for i in range(2)])
    assert float(m.result()) == pytest.approx(ref, abs=1e-3)
    s = SSIM(crop_border=2)
    s.update_state(hr, sr)
    ref = np.mean([ssim(sr[i], hr[i], 2, round_y=False) for i in range(2)])
    assert float(s.result()) == pytest.approx(ref, abs=1e-4)
    assert isinstance(m, keras.metrics.Metric)
