"""Pixel, style / total-variation and adversarial losses against hand-computed values."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from srkeras import losses
from srkeras.losses import adversarial


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def _sigmoid(t):
    return 1.0 / (1.0 + math.exp(-t))


# ----------------------------------------------------------------------------- pixel


D = [[0.1, -0.2], [0.3, 0.0]]  # y_pred - y_true of one 2x2 grey image


def _pair():
    y_true = np.full((1, 2, 2, 1), 0.5, np.float32)
    y_pred = y_true + np.asarray(D, np.float32)[None, :, :, None]
    return y_true, y_pred


def test_pixel_losses_hand_computed():
    y_true, y_pred = _pair()
    d = [v for row in D for v in row]
    assert _np(losses.mse(y_true, y_pred)) == pytest.approx([sum(v * v for v in d) / 4], rel=1e-5)  # 0.035
    assert _np(losses.l1(y_true, y_pred)) == pytest.approx([0.15], rel=1e-5)
    expected = sum(math.sqrt(v * v + 1e-6) for v in d) / 4
    assert _np(losses.charbonnier(y_true, y_pred)) == pytest.approx([expected], rel=1e-5)
    # Identical images: Charbonnier bottoms out at eps = 1e-3, not 0.
    assert _np(losses.charbonnier(y_true, y_true)) == pytest.approx([1e-3], rel=1e-4)


def test_pixel_loss_classes_reduce_over_batch_and_serialize():
    y_true, y_pred = _pair()
    yt = np.concatenate([y_true, y_true])
    yp = np.concatenate([y_pred, y_true])  # second image perfect
    assert _np(losses.MSE()(yt, yp)) == pytest.approx(0.035 / 2, rel=1e-5)
    assert _np(losses.L1()(yt, yp)) == pytest.approx(0.15 / 2, rel=1e-5)
    per_image = _np(losses.charbonnier(yt, yp, eps=0.01))
    assert per_image.shape == (2,)
    c = losses.Charbonnier(eps=0.01)
    assert _np(c(yt, yp)) == pytest.approx(per_image.mean(), rel=1e-5)
    c2 = keras.losses.deserialize(keras.losses.serialize(c))
    assert isinstance(c2, losses.Charbonnier) and c2.eps == 0.01
    assert isinstance(losses.get("charbonnier"), losses.Charbonnier)
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("nope")


# ----------------------------------------------------------------------------- style / TV


def test_gram_matrix_hand_computed():
    # Positions (h, w) x channels: rows [1,2], [3,4], [5,6], [7,8]; C*H*W = 8.
    f = np.arange(1, 9, dtype=np.float32).reshape(1, 2, 2, 2)
    g = _np(losses.gram_matrix(f))[0]
    np.testing.assert_allclose(g, [[84 / 8, 100 / 8], [100 / 8, 120 / 8]], rtol=1e-6)
    # ||G - 0||_F^2 = 10.5^2 + 2 * 12.5^2 + 15^2
    assert _np(losses.style_distance(np.zeros_like(f), f)) == pytest.approx([647.75], rel=1e-6)
    # Gram matrices do not depend on the spatial size: style image of another size broadcasts.
    big = np.tile(f, (1, 2, 3, 1))
    np.testing.assert_allclose(_np(losses.gram_matrix(big))[0], g, rtol=1e-6)


def test_total_variation_constant_and_ramp():
    const = np.full((2, 5, 6, 3), 0.7, np.float32)
    np.testing.assert_array_equal(_np(losses.total_variation(const)), [0.0, 0.0])
    # Horizontal ramp x[i, j, c] = 0.1 j on 3x4x2: H (W-1) C = 18 differences of 0.1, none vertical.
    ramp = np.broadcast_to((0.1 * np.arange(4, dtype=np.float32))[None, :, None], (3, 4, 2))
    assert _np(losses.total_variation(ramp, p=2)) == pytest.approx([18 * 0.01], rel=1e-5)
    assert _np(losses.total_variation(ramp, p=1)) == pytest.approx([18 * 0.1], rel=1e-5)
    # Transposed ramp: the same amount of vertical variation.
    assert _np(losses.total_variation(np.swapaxes(ramp, 0, 1), p=2)) == pytest.approx([0.18], rel=1e-5)
    # p=1 is the anisotropic L1 TV of tf.image.total_variation.
    x = np.random.default_rng(0).random((2, 7, 5, 3), dtype=np.float32)
    ref = tf.image.total_variation(tf.constant(x)).numpy()
    np.testing.assert_allclose(_np(losses.total_variation(x, p=1)), ref, rtol=1e-5)
    tv = losses.TotalVariation(p=1)
    assert _np(tv(x, x)) == pytest.approx(float(np.mean(tf.image.total_variation(tf.constant(x)))), rel=1e-5)


def test_style_loss_on_backbone():
    loss = losses.StyleLoss(backbone="vgg16", layers=["block1_conv2", "block2_conv2"], weights=None)
    rng = np.random.default_rng(1)
    x = rng.random((2, 32, 32, 3), dtype=np.float32)
    assert _np(loss(x, x)) == 0.0
    style = rng.random((1, 40, 24, 3), dtype=np.float32)  # one style image of another size
    v = _np(loss(style, x))
    assert np.isfinite(v) and v > 0


# ----------------------------------------------------------------------------- adversarial

R = [2.0, -1.0]  # discriminator logits on real images
F = [0.5, -3.0]  # on generated images


def _mean(v):
    return sum(v) / len(v)


def _adv(fn, kind, r=R, f=F):
    return float(_np(fn(kind, None if r is None else np.float32(r), np.float32(f))))


def test_standard_gan_hand_computed():
    d = _mean([-math.log(_sigmoid(t)) for t in R]) + _mean([-math.log(1 - _sigmoid(t)) for t in F])
    g = _mean([-math.log(_sigmoid(t)) for t in F])  # SRGAN eq. 6 (non-saturating)
    assert _adv(adversarial.discriminator_loss, "standard") == pytest.approx(d, rel=1e-5)
    assert _adv(adversarial.generator_loss, "standard") == pytest.approx(g, rel=1e-5)
    assert _adv(adversarial.generator_loss, "standard", r=None) == pytest.approx(g, rel=1e-5)


def test_ragan_hand_computed():
    mr, mf = _mean(R), _mean(F)  # 0.5, -1.25
    d_rf = [_sigmoid(t - mf) for t in R]  # D_Ra(x_r, x_f)
    d_fr = [_sigmoid(t - mr) for t in F]  # D_Ra(x_f, x_r)
    d = -_mean([math.log(v) for v in d_rf]) - _mean([math.log(1 - v) for v in d_fr])  # ESRGAN eq. 1
    g = -_mean([math.log(1 - v) for v in d_rf]) - _mean([math.log(v) for v in d_fr])  # ESRGAN eq. 2
    assert _adv(adversarial.discriminator_loss, "ragan") == pytest.approx(d, rel=1e-5)
    assert _adv(adversarial.generator_loss, "ragan") == pytest.approx(g, rel=1e-5)
    with pytest.raises(ValueError, match="real"):
        _adv(adversarial.generator_loss, "ragan", r=None)


def test_lsgan_and_hinge_hand_computed():
    # LSGAN: D = ((1+4)/2 + (0.25+9)/2) / 2, G = ((0.25+16)/2) / 2.
    assert _adv(adversarial.discriminator_loss, "lsgan") == pytest.approx(3.5625, rel=1e-6)
    assert _adv(adversarial.generator_loss, "lsgan") == pytest.approx(4.0625, rel=1e-6)
    # Hinge: D = mean(relu(1-r)) + mean(relu(1+f)) = mean(0, 2) + mean(1.5, 0); G = -mean(f).
    assert _adv(adversarial.discriminator_loss, "hinge") == pytest.approx(1.75, rel=1e-6)
    assert _adv(adversarial.generator_loss, "hinge") == pytest.approx(1.25, rel=1e-6)
    with pytest.raises(ValueError, match="unknown adversarial"):
        adversarial.generator_loss("wgan", R, F)


@pytest.mark.parametrize("kind", adversarial.KINDS)
def test_adversarial_stable_for_extreme_logits_and_patch_outputs(kind):
    big = np.array([[1000.0], [-1000.0]], np.float32)  # (N, 1) logits
    for fn in (adversarial.discriminator_loss, adversarial.generator_loss):
        assert np.isfinite(_np(fn(kind, big, -big)))
    if kind == "standard":
        # A perfect discriminator: D loss -> 0, non-saturating G loss -> |logit| (no overflow to inf).
        r, f = np.float32([1000.0]), np.float32([-1000.0])
        assert _np(adversarial.discriminator_loss(kind, r, f)) == pytest.approx(0.0, abs=1e-6)
        assert _np(adversarial.generator_loss(kind, r, f)) == pytest.approx(1000.0, rel=1e-6)
    # PatchGAN-style (N, h, w, 1) logits: mean over all elements equals the flat version.
    rng = np.random.default_rng(2)
    r, f = rng.normal(size=(2, 3, 3, 1)).astype(np.float32), rng.normal(size=(2, 3, 3, 1)).astype(np.float32)
    for fn in (adversarial.discriminator_loss, adversarial.generator_loss):
        assert _np(fn(kind, r, f)) == pytest.approx(float(_np(fn(kind, r.ravel(), f.ravel()))), rel=1e-6)


def test_generator_gradient_pushes_fake_logits_up():
    f = tf.Variable([0.5, -3.0])
    r = tf.constant(R)
    for kind in adversarial.KINDS:
        with tf.GradientTape() as tape:
            loss = adversarial.generator_loss(kind, r, f)
        grad = tape.gradient(loss, f).numpy()
        assert np.all(grad < 0), (kind, grad)  # descending the loss raises D's score of fakes
