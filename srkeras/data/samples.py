"""The embedded default data set: real colour photographs that ship inside the scikit-image wheel.

No download is needed, so the README's main command and the tests run offline. The held-out names
are never used for training by the embedded default job.
"""

from __future__ import annotations

import numpy as np

#: Colour photographs in ``skimage.data`` (all RGB, 8-bit; 300 to 1500 pixels a side).
SAMPLE_NAMES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
)
#: Photos scored by the default job but never trained on.
HELD_OUT = ("astronaut", "coffee")


def sample_image(name: str) -> np.ndarray:
    """One scikit-image photo as float32 (H, W, 3) in [0, 1]."""
    from skimage import data

    if name not in SAMPLE_NAMES:
        raise ValueError(f"unknown sample image {name!r}; choose from {SAMPLE_NAMES}")
    img = getattr(data, name)()
    if isinstance(img, tuple):  # stereo_motorcycle returns (left, right, disparity)
        img = img[0]
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return (img[..., :3].astype(np.float32) / 255.0).copy()


def sample_images(names=SAMPLE_NAMES) -> dict[str, np.ndarray]:
    return {n: sample_image(n) for n in names}
