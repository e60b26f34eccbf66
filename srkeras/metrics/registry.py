"""Names of the metrics for CLIs and reports: which need a reference, which way is better, and one
:func:`compute` entry point for the perceptual / no-reference ones (PSNR/SSIM follow the SR table
protocol in :mod:`srkeras.evaluation`)."""

from __future__ import annotations

#: metric name -> installed assets it needs (``python -m pipelines.pretrained fetch ...``)
METRICS = {
    "psnr": (), "ssim": (),
    "lpips": ("lpips_alex",), "lpips_vgg": ("lpips_vgg", "vgg16_imagenet"), "dists": ("dists", "vgg16_imagenet"),
    "niqe": ("niqe",), "brisque": ("brisque",),
}
FULL_REFERENCE = ("psnr", "ssim", "lpips", "lpips_vgg", "dists")
NO_REFERENCE = ("niqe", "brisque")
HIGHER_IS_BETTER = frozenset({"psnr", "ssim"})


def check_names(names) -> tuple:
    bad = [n for n in names if n not in METRICS]
    if bad:
        raise ValueError(f"unknown metric(s) {', '.join(map(repr, bad))}; known: {', '.join(METRICS)}")
    return tuple(dict.fromkeys(names))


def compute(metric: str, img, ref=None, name: str | None = None) -> float:
    """``metric`` (not psnr/ssim) of uint8 ``img`` (against uint8 ``ref`` for full-reference ones)."""
    from srkeras import metrics

    check_names([metric])
    if metric in NO_REFERENCE:
        return getattr(metrics, metric)(img, name=name)
    if ref is None:
        raise ValueError(f"{name or 'img'}: {metric} is a full-reference metric and needs the reference image")
    if metric == "lpips_vgg":
        return metrics.lpips(img, ref, net="vgg", name=name)
    if metric in ("lpips", "dists"):
        return getattr(metrics, metric)(img, ref, name=name)
    raise ValueError(f"{metric} follows the SR protocol: use srkeras.evaluation.score")
