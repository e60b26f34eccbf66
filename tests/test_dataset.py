"""tf.data pipeline: crops, on-the-fly degradations, augmentation, determinism, resume and replica split."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from srkeras.data import degrade, rgb_to_y  # noqa: E402
from srkeras.data.dataset import ImageCache, PipelineSpec, load_hr_folders, replica_dataset_fn, training_dataset  # noqa: E402

RNG = np.random.default_rng(1)
IMAGES = [RNG.random((30 + 3 * i, 26 + 2 * i, 3)).astype(np.float32) for i in range(3)]


def cache(min_size=12):
    return ImageCache.from_arrays(IMAGES + [RNG.random((10, 40, 3))], ["a", "b", "c", "tiny"], min_size)


def take(ds, n):
    return [(lr.numpy(), hr.numpy()) for lr, hr in ds.take(n)]


def test_small_images_are_skipped_and_named():
    c = cache()
    assert c.names == ["a", "b", "c"]
    assert len(c.skipped) == 1 and "tiny" in c.skipped[0] and "40x10" in c.skipped[0]
    with pytest.raises(ValueError, match="no training image"):
        ImageCache.from_arrays(IMAGES, ["a", "b", "c"], 100)


def test_crops_come_from_the_images_and_lr_is_matlab_bicubic():
    c = cache()
    spec = PipelineSpec(hr_patch=12, scale=3, global_batch=4, augment=False, quantize_lr=False)
    (lr, hr), = take(training_dataset(c, spec), 1)
    assert hr.shape == (4, 12, 12, 3) and lr.shape == (4, 4, 4, 3)
    q = [np.round(im * 255) / 255 for im in IMAGES]
    for k in range(4):
        # Every HR crop is an exact 12x12 window of one (8-bit) source image.
        found = any(
            np.allclose(hr[k], im[y : y + 12, x : x + 12], atol=1e-6)
            for im in q
            for y in range(im.shape[0] - 11)
            for x in range(im.shape[1] - 11)
        )
        assert found
        np.testing.assert_allclose(lr[k], degrade(hr[k], 3, "bicubic"), atol=2e-6)


@pytest.mark.parametrize("name", ["blur_bicubic", "nearest"])
def test_other_degradations_match_numpy(name):
    spec = PipelineSpec(hr_patch=24, scale=4, global_batch=2, degradation=name, quantize_lr=False)
    (lr, hr), = take(training_dataset(cache(24), spec), 1)
    for k in range(2):
        np.testing.assert_allclose(lr[k], degrade(hr[k], 4, name), atol=2e-6)


def test_lr_is_quantised_to_8_bits_and_y_channel():
    c = cache()
    spec = PipelineSpec(hr_patch=12, scale=2, global_batch=3, augment=False, seed=5)
    (lr, hr), = take(training_dataset(c, spec), 1)
    np.testing.assert_allclose(lr * 255, np.round(lr * 255), atol=1e-4)
    y_spec = PipelineSpec(hr_patch=12, scale=2, global_batch=3, augment=False, seed=5, channels=1)
    (ylr, yhr), = take(training_dataset(c, y_spec), 1)
    assert yhr.shape == (3, 12, 12, 1)
    np.testing.assert_allclose(yhr, rgb_to_y(hr), atol=1e-6)  # same crops, BT.601 Y


def test_augmentation_is_a_dihedral_transform():
    c = cache()
    plain = take(training_dataset(c, PipelineSpec(12, 3, 16, augment=False, seed=2)), 1)[0][1]
    aug = take(training_dataset(c, PipelineSpec(12, 3, 16, augment=True, seed=2)), 1)[0][1]
    changed = 0
    for p, a in zip(plain, aug):
        variants = [np.rot90(f, k) for f in (p, p[:, ::-1]) for k in range(4)]
        assert any(np.array_equal(a, v) for v in variants)
        changed += not np.array_equal(a, p)
    assert changed >= 8  # 7 of 8 transforms change a random crop


def test_deterministic_and_resumable():
    c = cache()
    spec = PipelineSpec(12, 3, 4, seed=7)
    a = take(training_dataset(c, spec), 5)
    b = take(training_dataset(c, spec), 5)
    for (_l1, h1), (_l2, h2) in zip(a, b):
        np.testing.assert_array_equal(h1, h2)
    resumed = take(training_dataset(c, spec, start_step=3), 2)
    np.testing.assert_array_equal(resumed[0][1], a[3][1])
    np.testing.assert_array_equal(resumed[1][1], a[4][1])
    other = take(training_dataset(c, PipelineSpec(12, 3, 4, seed=8)), 1)
    assert not np.array_equal(other[0][1], a[0][1])


@pytest.mark.parametrize("pipelines,replicas", [(1, 2), (2, 2), (2, 4)])
def test_replica_batches_partition_the_global_batch(pipelines, replicas):
    c = cache()
    spec = PipelineSpec(12, 3, 8, seed=3)
    ref = take(training_dataset(c, spec, start_step=1), 2)
    fn = replica_dataset_fn(c, spec, start_step=1)
    local = replicas // pipelines
    per_pipeline = []
    for w in range(pipelines):
        ctx = tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=w, num_replicas_in_sync=replicas)
        per_pipeline.append(take(fn(ctx), 2 * local))
    for t in range(2):
        parts = [per_pipeline[w][t * local + r][1] for w in range(pipelines) for r in range(local)]
        np.testing.assert_array_equal(np.concatenate(parts), ref[t][1])


def test_load_folders_reports_bad_and_small_files(tmp_path):
    from srkeras.data import save_image

    save_image(tmp_path / "good.png", IMAGES[0])
    save_image(tmp_path / "small.png", IMAGES[0][:8, :8])
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    c = load_hr_folders(tmp_path, min_size=12, progress=False)
    assert [n.endswith("good.png") for n in c.names] == [True]
    msgs = "\n".join(c.skipped)
    assert "broken.png" in msgs and "small.png" in msgs
    np.testing.assert_allclose(c.image(0), np.round(IMAGES[0] * 255) / 255, atol=1e-6)
