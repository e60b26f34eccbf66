"""bfloat16 vs float32 per installed model, and which layers should stay float32.

    python -m benchmarks.bench_precision [--models realesrgan_x4plus ...] [--size 64] [--json out.json]

For each model (installed with ``python -m pipelines.pretrained fetch NAME``) and each group of
float32 layers (:func:`srkeras.inference.precision.float32_layers`: none, ``residual``, ``ends``,
``residual+ends`` (the default), ``residual+ends+tail``): PSNR (RGB, 8-bit quantised outputs) of the
bfloat16 output against the float32 output, on a centre crop of Set14's ``baboon`` and ``lenna``
(``../shared/data/Set14``; a scikit-image photo when absent) downscaled by the model's scale, and CPU
seconds (``time.process_time``, this process) per output megapixel of an untiled run, after a
warm-up. CPU model, bfloat16 flags and the load average are printed: the box is shared, CPU seconds
are what is compared.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = ("realesrgan_x4plus", "realesr_animevideov3", "rdn_div2k_x4")
GROUPS = ((), ("residual",), ("ends",), ("residual", "ends"), ("residual", "ends", "tail"))


def _images(size: int, scale: int):
    import numpy as np

    from srkeras.data import imresize, read_image

    found = [Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "Set14" / f for f in ("baboon.png", "lenna.png")]
    if all(p.is_file() for p in found):
        hrs = [read_image(p).pixels for p in found]
    else:
        from skimage import data

        hrs = [data.astronaut().astype(np.float32) / 255.0]
    out = []
    for hr in hrs:
        lr = np.clip(imresize(hr[..., :3], 1.0 / scale), 0, 1)
        h, w = lr.shape[:2]
        y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
        out.append(np.ascontiguousarray(lr[y : y + size, x : x + size], dtype=np.float32))
    return out


def _cpu_per_mp(served, img, repeats: int = 2) -> float:
    from srkeras.inference import upscale

    upscale(served, img, tile=0)  # warm-up: trace
    t = time.process_time()
    for _ in range(repeats):
        upscale(served, img, tile=0)
    dt = (time.process_time() - t) / repeats
    return dt / (img.shape[0] * img.shape[1] * served.scale**2 / 1e6)


def bench_model(name: str, size: int) -> dict:
    from srkeras.data import quantize
    from srkeras.inference import load_generator, upscale
    from srkeras.inference.precision import float32_layers, with_policies
    from srkeras.metrics import psnr

    served = load_generator(name)
    imgs = _images(size, served.scale)
    refs = [quantize(upscale(served, im, tile=0), 8) / 255.0 for im in imgs]
    res = {"float32": {"cpu_s_per_mp": _cpu_per_mp(served, imgs[0])}}
    print(f"{name}: float32 {res['float32']['cpu_s_per_mp']:.2f} CPU-s/MP", flush=True)
    for keep in GROUPS:
        names = float32_layers(served.model, keep)
        b = served.rebuilt(lambda m, names=names: with_policies(m, "mixed_bfloat16", names))
        outs = [quantize(upscale(b, im, tile=0), 8) / 255.0 for im in imgs]
        p = min(psnr(o, r, y_channel=False) for o, r in zip(outs, refs))
        label = "+".join(keep) or "none"
        res[label] = {"psnr_vs_float32_min": p, "cpu_s_per_mp": _cpu_per_mp(b, imgs[0]), "float32_layers": len(names)}
        print(f"  bf16, float32 layers: {label:22} PSNR {p:6.2f} dB  {res[label]['cpu_s_per_mp']:.2f} CPU-s/MP", flush=True)
    return res


def main(argv=None) -> int:
    from srkeras.inference.precision import cpu_bf16_flags, cpu_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--size", type=int, default=64, help="LR crop edge")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    info = {"cpu": cpu_model(), "bf16_flags": cpu_bf16_flags(), "load_before": os.getloadavg()[0]}
    print(f"CPU {info['cpu']}, bf16 flags {info['bf16_flags']}, load {info['load_before']:.2f}")
    if not info["bf16_flags"]:
        print("no bfloat16 instructions on this CPU: nothing to measure")
        return 0
    out = {"machine": info, "models": {m: bench_model(m, args.size) for m in args.models}}
    out["machine"]["load_after"] = os.getloadavg()[0]
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
