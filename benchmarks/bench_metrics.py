"""CPU throughput (megapixels/s) of every metric of :mod:`srkeras.metrics`.

    python -m benchmarks.bench_metrics [--size 512] [--repeats 3] [--metrics psnr lpips ...] [--json out.json]

Workload: a size x size crop of a scikit-image photo (tiled if needed) against a blurred copy;
each metric is timed best-of-``repeats`` after one warm-up call (TF graph building, weights load).
Needs the metric assets (``python -m pipelines.pretrained fetch lpips_alex lpips_vgg dists niqe brisque``);
a missing one is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

ALL = ("psnr", "ssim", "lpips", "lpips_vgg", "dists", "niqe", "brisque")


def _images(size: int):
    from scipy import ndimage
    from skimage import data

    x = data.astronaut()
    x = np.tile(x, (size // x.shape[0] + 1, size // x.shape[1] + 1, 1))[:size, :size]
    y = np.stack([ndimage.gaussian_filter(x[..., c].astype(float), 1.5) for c in range(3)], -1)
    return x, np.clip(np.round(y), 0, 255).astype(np.uint8)


def _fn(metric: str):
    from srkeras import metrics

    if metric in ("psnr", "ssim"):
        f = getattr(metrics, metric)
        return lambda a, b: f(a / 255.0, b / 255.0, crop_border=4)
    return lambda a, b: metrics.registry.compute(metric, a, b)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--metrics", nargs="+", default=list(ALL), choices=ALL)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from srkeras.pretrained import MissingAssetError

    hr, sr = _images(args.size)
    mp = hr.shape[0] * hr.shape[1] / 1e6
    out = {"size": args.size, "megapixels": mp, "metrics": {}}
    print(f"{args.size}x{args.size} RGB ({mp:.3f} MP), best of {args.repeats}")
    for m in args.metrics:
        fn = _fn(m)
        try:
            value = fn(sr, hr)
        except MissingAssetError as e:
            print(f"{m:10} skipped: {e}")
            continue
        best = min(_time(fn, sr, hr) for _ in range(args.repeats))
        out["metrics"][m] = {"value": float(value), "seconds": best, "mp_per_s": mp / best}
        print(f"{m:10} {value:9.4f}  {best * 1000:8.1f} ms  {mp / best:7.2f} MP/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


def _time(fn, a, b) -> float:
    t = time.perf_counter()
    fn(a, b)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
