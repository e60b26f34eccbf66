"""``tf.data`` training pipeline: decoded HR images cached in memory, random HR crops, LR on the fly.

* Every HR image is decoded once (any format :func:`srkeras.data.read_image` reads) and packed into
  one flat uint8 (or uint16 for 16-bit files) array; every file that cannot be used (unreadable,
  corrupt, not an image, smaller than the crop) is skipped and reported by name with its reason.
* Element ``e`` of the stream draws its image, crop position, flip and 90-degree rotation from
  ``tf.random.stateless_*`` with seed ``(seed, e)``. The stream is therefore deterministic for a
  seed whatever the parallelism, and a resumed run continues it exactly (it starts at element
  ``step * global_batch``).
* The LR patch is made from the HR patch per batch by a named degradation (MATLAB bicubic by
  default, :func:`srkeras.data.imresize_tf`) and quantised to 8 bits, as the evaluation protocol
  stores LR images (:mod:`srkeras.evaluation`).
* Y-only models (``channels=1``) get BT.601 Y (MATLAB ``rgb2ycbcr``), as SRCNN/ESPCN train.
* Validation images (:func:`load_validation`) are held as the evaluation protocol holds HR images
  (:mod:`srkeras.evaluation`: mod-cropped, 8-bit, grey kept grey) and scored by it.

Multi-replica input: :func:`replica_dataset_fn` gives each input pipeline (one per worker) the
per-replica batches whose union over replicas is exactly the global batch the default strategy would
see, so one, two or many devices train on the same data. Across workers this is sharding *at the
batch level*: every worker derives the same global-batch stream from the seed and draws only its own
slice of each batch (worker w, replica r: elements ``t*G + (w*R_local + r)*b ...``), so workers crop
different patches, none is drawn twice, and N workers train exactly like one process with the same
global batch (tf.data auto-sharding is off: it would shard by file or drop elements).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from srkeras.data.color import RGB_TO_YCBCR, YCBCR_OFFSET
from srkeras.data.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageLoadError,
    list_images,
    modcrop,
    quantize,
    read_image,
)

DEGRADATIONS_TF = ("bicubic", "blur_bicubic", "nearest")


@dataclasses.dataclass
class ImageCache:
    """Decoded HR images packed into one flat array (row-major (H, W, 3) each)."""

    pixels: np.ndarray  # flat uint8 or uint16
    offsets: np.ndarray  # (N,) int64 start of each image in ``pixels``
    shapes: np.ndarray  # (N, 2) int64 (H, W)
    names: list[str]
    skipped: list[str]  # one message per image left out, naming it and why

    @property
    def max_value(self) -> float:
        return float(np.iinfo(self.pixels.dtype).max)

    def __len__(self) -> int:
        return len(self.names)

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as float32 (H, W, 3) in [0, 1]."""
        h, w = self.shapes[i]
        o = self.offsets[i]
        return self.pixels[o : o + h * w * 3].reshape(h, w, 3).astype(np.float32) / self.max_value

    @classmethod
    def from_arrays(cls, images, names, min_size: int, bit_depth: int = 8) -> ImageCache:
        """Pack float [0, 1] (H, W, C) arrays, skipping those with a side under ``min_size``."""
        kept, kept_names, skipped = [], [], []
        for img, name in zip(images, names):
            img = np.asarray(img)
            if img.shape[-1] == 1:
                img = np.repeat(img, 3, axis=-1)
            h, w = img.shape[:2]
            if min(h, w) < min_size:
                skipped.append(f"{name}: {w}x{h} is smaller than the {min_size}x{min_size} training crop")
                continue
            kept.append(quantize(img[..., :3], bit_depth))
            kept_names.append(name)
        if not kept:
            raise ValueError("no training image is usable:\n  " + "\n  ".join(skipped or ["(no images given)"]))
        sizes = np.array([k.size for k in kept], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        pixels = np.concatenate([k.ravel() for k in kept])
        shapes = np.array([k.shape[:2] for k in kept], dtype=np.int64)
        return cls(pixels, offsets, shapes, kept_names, skipped)


def load_hr_folders(dirs, min_size: int, max_pixels: int | None = DEFAULT_MAX_PIXELS, progress: bool = True) -> ImageCache:
    """Decode every image of the folder(s) once. Every entry that cannot be trained on -- unreadable,
    truncated or corrupt, not an image, too small for the crop, a broken link or a subfolder -- is
    reported in ``skipped`` with its reason, in folder order; none usable is an error listing them all."""
    from tqdm import tqdm

    if isinstance(dirs, (str, Path)):
        dirs = [dirs]
    files, unusable = [], {}
    for d in dirs:
        files += list_images(d)
        unusable.update(not_images(d))
    images, names = [], []
    bit_depth = 8
    for f in tqdm(files, desc="decode HR images", unit="img", disable=not progress, file=sys.stderr, leave=False):
        try:
            img = read_image(f, max_pixels=max_pixels)
        except ImageLoadError as e:
            unusable[f] = str(e).removeprefix(f"{f}: ")
            continue
        except OSError as e:  # e.g. permission denied, an I/O error
            unusable[f] = f"cannot read the file ({e.strerror or e})"
            continue
        h, w = img.pixels.shape[:2]
        if min(h, w) < min_size:
            unusable[f] = f"{w}x{h} is smaller than the {min_size}x{min_size} training crop"
            continue
        bit_depth = max(bit_depth, img.bit_depth)
        images.append(img.pixels)
        names.append(str(f))
    skipped = [f"{f}: {why}" for f, why in sorted(unusable.items(), key=lambda kv: (str(kv[0].parent), kv[0].name))]
    if not images:
        raise ValueError(f"no training image is usable (of {len(files)} image files):\n  " + "\n  ".join(skipped))
    cache = ImageCache.from_arrays(images, names, min_size, bit_depth=bit_depth)
    cache.skipped = skipped + cache.skipped
    return cache


def not_images(directory) -> dict:
    """{path: reason} for the entries of ``directory`` that :func:`list_images` leaves out: files that
    are not images, links to nothing, subfolders (not searched). Hidden entries are ignored."""
    out = {}
    for p in sorted(Path(directory).iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            out[p] = "a folder (subfolders are not searched; give it its own --train-dir)"
        elif not p.is_file():
            out[p] = "not a readable file (a broken link or a special file)"
        elif p.suffix.lower() not in IMAGE_EXTENSIONS:
            out[p] = f"not an image file (the extension {p.suffix or '(none)'!r} is not one of {', '.join(IMAGE_EXTENSIONS)})"
    return out


def load_validation(source, scale: int, max_images: int | None = None, min_side: int | None = None):
    """[(name, HR)] from a folder (any format :func:`read_image` reads) or a dict name->array, as the
    evaluation protocol holds HR images: mod-cropped to ``scale``, 8-bit, float32 in [0, 1], grey
    images kept grey (H, W, 1) -- the HR of :func:`srkeras.evaluation.prepare`, so validation scores
    a folder exactly as ``pipelines.evaluate`` does. Alpha is dropped.

    Unreadable images, and images too small to score (``min_side``, default
    :func:`srkeras.evaluation.min_hr_side`: one 11x11 SSIM window after shaving ``scale`` px), are
    skipped. Returns (images, skipped messages).
    """
    min_side = min_side or 11 + 2 * scale  # srkeras.evaluation.min_hr_side (a layer above srkeras.data)
    if isinstance(source, dict):
        items = list(source.items())
    else:
        items = []
        for f in list_images(source):
            try:
                items.append((f.stem, read_image(f).pixels))
            except ImageLoadError as e:
                items.append((f.stem, e))
    out, skipped = [], []
    for name, img in items:
        if isinstance(img, Exception):
            skipped.append(str(img))
            continue
        img = np.asarray(img)
        img = img[..., None] if img.ndim == 2 else img[..., : 1 if img.shape[-1] <= 2 else 3]
        img = modcrop(img, scale)
        if min(img.shape[:2]) < min_side:
            skipped.append(f"{name}: too small to validate at x{scale}")
            continue
        out.append((name, quantize(img) / np.float32(255.0)))
        if max_images and len(out) >= max_images:
            break
    return out, skipped


# --------------------------------------------------------------------------------------------------
# TensorFlow graph parts
# --------------------------------------------------------------------------------------------------


def rgb_to_y_tf(x):
    import tensorflow as tf

    w = tf.constant(RGB_TO_YCBCR[0].astype(np.float32)) / 255.0
    return tf.reduce_sum(x * w, axis=-1, keepdims=True) + np.float32(YCBCR_OFFSET[0] / 255.0)


def degrade_tf(hr, scale: int, name: str = "bicubic", sigma: float = 1.0):
    """Batched (N, H, W, C) TF twin of :func:`srkeras.data.degrade`."""
    import tensorflow as tf

    from srkeras.data.imresize import imresize_tf

    if name == "bicubic":
        return imresize_tf(hr, 1.0 / scale)
    if name == "blur_bicubic":
        # scipy.ndimage.gaussian_filter(mode='mirror', truncate=4): radius int(4 sigma + 0.5), REFLECT pad.
        r = int(4.0 * sigma + 0.5)
        ax = np.arange(-r, r + 1, dtype=np.float64)
        g = np.exp(-(ax**2) / (2 * sigma**2))
        g = (g / g.sum()).astype(np.float32)
        c = hr.shape[-1]
        x = tf.pad(hr, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
        kv = tf.constant(np.tile(g.reshape(-1, 1, 1, 1), (1, 1, c, 1)))
        kh = tf.constant(np.tile(g.reshape(1, -1, 1, 1), (1, 1, c, 1)))
        x = tf.nn.depthwise_conv2d(x, kv, [1, 1, 1, 1], "VALID")
        x = tf.nn.depthwise_conv2d(x, kh, [1, 1, 1, 1], "VALID")
        return imresize_tf(x, 1.0 / scale)
    if name == "nearest":
        off = (scale - 1) // 2
        return hr[:, off::scale, off::scale, :]
    raise ValueError(f"unknown degradation {name!r}; choose from {list(DEGRADATIONS_TF)}")


@dataclasses.dataclass
class PipelineSpec:
    """What a training stream needs; the global batch is split evenly over replicas."""

    hr_patch: int
    scale: int
    global_batch: int
    degradation: str = "bicubic"
    channels: int = 3
    augment: bool = True
    seed: int = 0
    quantize_lr: bool = True
    blur_sigma: float = 1.0

    def check(self):
        if self.hr_patch % self.scale:
            raise ValueError(f"HR patch {self.hr_patch} is not a multiple of the scale {self.scale}")
        if self.degradation not in DEGRADATIONS_TF:
            raise ValueError(f"unknown degradation {self.degradation!r}; choose from {list(DEGRADATIONS_TF)}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")


def _make_stream(cache: ImageCache, spec: PipelineSpec, batch: int, element_index, start_batch: int):
    """Batches of (LR, HR) for the batch numbers start_batch, start_batch+1, ... of this pipeline.

    ``element_index(k, j)`` maps this pipeline's batch k, slot j to the global element number.
    """
    import tensorflow as tf

    spec.check()
    p, s = spec.hr_patch, spec.scale
    pixels = tf.constant(cache.pixels)
    offsets = tf.constant(cache.offsets)
    shapes = tf.constant(cache.shapes)
    n = len(cache)
    max_value = cache.max_value

    def crop(e):
        seed = tf.stack([tf.constant(spec.seed, tf.int64), e])
        u = tf.random.stateless_uniform([5], seed=seed, dtype=tf.float32)
        i = tf.minimum(tf.cast(u[0] * n, tf.int64), n - 1)
        h, w = shapes[i][0], shapes[i][1]
        y0 = tf.minimum(tf.cast(u[1] * tf.cast(h - p + 1, tf.float32), tf.int64), h - p)
        x0 = tf.minimum(tf.cast(u[2] * tf.cast(w - p + 1, tf.float32), tf.int64), w - p)
        # Slice only the p rows needed, then the columns (no copy of the whole image).
        start = offsets[i] + y0 * w * 3
        rows = tf.reshape(pixels[start : start + p * w * 3], tf.stack([p, w, 3]))
        hr = rows[:, x0 : x0 + p, :]
        hr = tf.cast(hr, tf.float32) / max_value
        if spec.augment:
            hr = tf.cond(u[3] < 0.5, lambda: tf.reverse(hr, [1]), lambda: hr)
            hr = tf.image.rot90(hr, tf.minimum(tf.cast(u[4] * 4, tf.int32), 3))
        hr = tf.ensure_shape(hr, [p, p, 3])
        if spec.channels == 1:
            hr = rgb_to_y_tf(hr)
        return hr

    def degrade(hr):
        lr = degrade_tf(hr, s, spec.degradation, spec.blur_sigma)
        if spec.quantize_lr:
            lr = tf.round(tf.clip_by_value(lr, 0.0, 1.0) * 255.0) / 255.0
        lr = tf.ensure_shape(lr, [batch, p // s, p // s, spec.channels])
        return lr, tf.ensure_shape(hr, [batch, p, p, spec.channels])

    ds = tf.data.Dataset.range(start_batch * batch, np.iinfo(np.int64).max)
    ds = ds.map(lambda t: element_index(t // batch, t % batch))
    ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch, drop_remainder=True)
    ds = ds.map(degrade, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE)


def training_dataset(cache: ImageCache, spec: PipelineSpec, start_step: int = 0):
    """Global batches of (LR, HR) from ``start_step`` on, for the default (one-device) strategy."""
    b = spec.global_batch
    return _make_stream(cache, spec, b, lambda k, j: k * b + j, start_step)


def replica_dataset_fn(cache: ImageCache, spec: PipelineSpec, start_step: int = 0):
    """``dataset_fn(input_context)`` for ``strategy.distribute_datasets_from_function``.

    Pipeline w (one per worker) yields, in turn, the per-replica batches of its local replicas; the
    batch for replica r of worker w at step t holds global elements
    ``t * G + (w * R_local + r) * b + j`` (G global batch, b = G / replicas): the global batch t of
    :func:`training_dataset`, cut into consecutive per-replica slices.
    """

    def dataset_fn(ctx):
        replicas = ctx.num_replicas_in_sync
        if spec.global_batch % replicas:
            raise ValueError(f"global batch {spec.global_batch} is not divisible by {replicas} replicas")
        b = spec.global_batch // replicas
        local = replicas // ctx.num_input_pipelines
        w = ctx.input_pipeline_id

        def element(k, j):
            t, r = k // local, k % local
            return t * spec.global_batch + (w * local + r) * b + j

        return _make_stream(cache, spec, b, element, start_step * local)

    return dataset_fn

