"""Window attention plumbing shared by the window transformers (Swin: Liu et al., ICCV 2021 -- SwinIR,
DAT): partition a feature map into windows and back, the relative position index of a window, and the
attention mask of shifted windows, computed from the (dynamic) feature size with ``keras.ops`` so a
functional model takes any input size.
"""

from __future__ import annotations

import numpy as np
from keras import ops


def partition(x, hs: int, ws: int):
    """(B, H, W, C) -> (B * H/hs * W/ws, hs*ws, C), windows in row-major order (Swin's ``window_partition``)."""
    b, h, w, c = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2], x.shape[-1]
    y = ops.transpose(ops.reshape(x, (b, h // hs, hs, w // ws, ws, c)), (0, 1, 3, 2, 4, 5))
    return ops.reshape(y, (-1, hs * ws, c))


def merge(y, b, h, w, hs: int, ws: int):
    """Inverse of :func:`partition`: (B * H/hs * W/ws, hs*ws, C) -> (B, H, W, C) (``window_reverse``)."""
    c = y.shape[-1]
    y = ops.reshape(y, (b, h // hs, w // ws, hs, ws, c))
    return ops.reshape(ops.transpose(y, (0, 1, 3, 2, 4, 5)), (b, h, w, c))


def relative_position_index(h: int, w: int) -> np.ndarray:
    """(hw, hw) index into the ((2h-1)(2w-1), heads) relative position bias table of an h x w window
    (Swin's ``relative_position_index``: ``(dy + h-1) * (2w-1) + (dx + w-1)``)."""
    coords = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + np.array([h - 1, w - 1])
    return (rel[..., 0] * (2 * w - 1) + rel[..., 1]).astype(np.int32)


def region(n, size: int, shift: int):
    """Shifted-window region label (0, 1, 2) of each of ``n`` rows: ``[0, n-size), [n-size, n-shift), rest``
    (the slices of Swin's ``calculate_mask``)."""
    i = ops.arange(n)
    return ops.cast(i >= n - size, "int32") + ops.cast(i >= n - shift, "int32")


def shift_mask(h, w, hs: int, ws: int, shift_h: int, shift_w: int, dtype="float32"):
    """(nW, hs*ws, hs*ws) mask of windows over an h x w map rolled by (-shift_h, -shift_w): 0 between
    tokens of one region, -100 between tokens that the cyclic roll brought together (Swin's ``attn_mask``);
    ``dtype``: the attention logits' (bfloat16 under a mixed policy)."""
    label = region(h, hs, shift_h)[:, None] * 3 + region(w, ws, shift_w)[None, :]
    lw = partition(ops.reshape(label, (1, h, w, 1)), hs, ws)[..., 0]  # nW, N
    return ops.cast(ops.where(lw[:, :, None] == lw[:, None, :], 0.0, -100.0), dtype)
