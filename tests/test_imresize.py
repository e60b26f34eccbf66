"""MATLAB-compatible bicubic imresize: hand-computed values, invariants, NumPy == TensorFlow."""

import numpy as np
import pytest

from srkeras.data import imresize
from srkeras.data.imresize import cubic, output_length, resize_matrix


def test_cubic_kernel_hand_values():
    # Keys (1981) a = -0.5: k(0)=1, k(1)=k(2)=0, k(0.5)=0.5625, k(1.5)=-0.0625.
    np.testing.assert_allclose(cubic(np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])), [1, 0.5625, 0, -0.0625, 0, 0])


def test_upscale_two_pixels_by_two_hand_computed():
    # u = x/2 + 1/4; symmetric borders; worked out by hand from MATLAB's contributions():
    # out = [1.09375 a - 0.09375 b, 0.796875 a + 0.203125 b, mirror...] for input [a, b] = [0, 1].
    out = imresize(np.array([[0.0, 1.0]]), 2)
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out, [[-0.09375, 0.203125, 0.796875, 1.09375]] * 2, atol=1e-12)


def test_identity_at_scale_one():
    rng = np.random.default_rng(0)
    img = rng.random((17, 23, 3))
    np.testing.assert_array_equal(imresize(img, 1), img)


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 2, 3, 4, 0.7])
def test_constant_stays_constant(scale):
    img = np.full((24, 36, 3), 0.3)
    out = imresize(img, scale)
    assert out.shape == (output_length(24, scale), output_length(36, scale), 3)
    np.testing.assert_allclose(out, 0.3, atol=1e-12)


def test_downscale_ramp_by_two():
    # Interior of a linear ramp i = 0..31 halved samples u = 2j + 0.5 exactly (symmetric kernel,
    # weights summing to 1); near the borders the symmetric reflection bends it.
    ramp = np.tile(np.arange(32, dtype=np.float64), (8, 1))
    out = imresize(ramp, 0.5)
    assert out.shape == (4, 16)
    j = np.arange(16)
    np.testing.assert_allclose(out[:, 2:14], np.tile(2 * j[2:14] + 0.5, (4, 1)), atol=1e-10)
    assert abs(out[0, 0] - 0.5) > 1e-3  # the border is reflected, not extrapolated


def test_rows_sum_to_one_and_output_lengths():
    for n, s in [(96, 1 / 3), (100, 0.25), (37, 4), (5, 2)]:
        m = resize_matrix(n, output_length(n, s), s)
        np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    assert output_length(96, 1 / 3) == 32
    assert output_length(37, 4) == 148


def test_uint8_input_is_rounded_and_clipped():
    img = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).astype(np.uint8)
    img[0, 0] = 255
    out = imresize(img, 2)
    assert out.dtype == np.uint8
    ref = np.clip(np.round(imresize(img.astype(np.float64), 2)), 0, 255)
    np.testing.assert_array_equal(out, ref)


def test_output_shape_argument_and_batch():
    rng = np.random.default_rng(1)
    batch = rng.random((2, 12, 10, 3)).astype(np.float32)
    out = imresize(batch, output_shape=(6, 5))
    assert out.shape == (2, 6, 5, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[1], imresize(batch[1], 0.5), atol=1e-6)


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 2, 3, 4])
def test_tensorflow_matches_numpy(scale):
    tf = pytest.importorskip("tensorflow")
    from srkeras.data import imresize_tf

    rng = np.random.default_rng(2)
    img = rng.random((48, 36, 3)).astype(np.float32)
    ref = imresize(img.astype(np.float64), scale)
    out = imresize_tf(tf.constant(img), scale).numpy()
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=2e-5)


def test_tensorflow_in_tf_data_with_dynamic_shapes():
    tf = pytest.importorskip("tensorflow")
    from srkeras.data import imresize_tf

    rng = np.random.default_rng(3)
    imgs = [rng.random((h, w, 3)).astype(np.float32) for h, w in [(16, 20), (24, 12)]]
    ds = tf.data.Dataset.from_generator(
        lambda: iter(imgs), output_signature=tf.TensorSpec((None, None, 3), tf.float32)
    ).map(lambda x: imresize_tf(x, 1 / 4))
    for got, img in zip(ds, imgs):
        np.testing.assert_allclose(got.numpy(), imresize(img.astype(np.float64), 1 / 4), atol=2e-5)


def test_tensorflow_uint8():
    tf = pytest.importorskip("tensorflow")
    from srkeras.data import imresize_tf

    img = (np.random.default_rng(4).random((20, 20, 3)) * 255).astype(np.uint8)
    out = imresize_tf(tf.constant(img), 1 / 2).numpy()
    assert out.dtype == np.uint8
    assert np.abs(out.astype(int) - imresize(img, 1 / 2).astype(int)).max() <= 1
