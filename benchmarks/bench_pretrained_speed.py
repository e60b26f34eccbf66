"""CPU seconds per output megapixel of installed pretrained models (the README's catalogue column).

    python -m benchmarks.bench_pretrained_speed --model waifu2x_upconv7_photo_x2_noise0 --model srmd_x4 [--lr-size 256]

For each model (installed in ``$SRKERAS_MODEL_DIR``): :func:`srkeras.inference.load_generator`, one
warm-up on a 32x32 input (tracing; excluded, as are loading and a receptive-field probe), then :func:`srkeras.inference.upscale`
of a ``--lr-size`` square crop of Set14 ``baboon`` (random pixels without ../shared) with tiles from
``--max-memory`` (default 2GB). Reports process CPU seconds (user + sys, all threads) and wall
seconds, each per output megapixel (``(lr_size * scale)^2 / 1e6``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _input(size: int):
    import numpy as np
    from PIL import Image

    src = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "Set14" / "baboon.png"
    if not src.is_file():
        return np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
    im = Image.open(src).convert("RGB")
    im = im.resize((max(size, im.width), max(size, im.height)), Image.BICUBIC).crop((0, 0, size, size))
    return np.asarray(im, dtype=np.float32) / 255.0


def measure(name: str, img, max_memory: str) -> dict:
    import numpy as np

    from srkeras.inference import load_generator, parse_memory_budget, upscale

    served = load_generator(name)
    _ = served.receptive_field, served.scale  # measured now (if the sidecar lacks them), not timed
    budget = parse_memory_budget(max_memory)
    upscale(served, np.zeros((32, 32, 3), np.float32), max_memory=budget)
    cpu, wall = time.process_time(), time.perf_counter()
    out = upscale(served, img, max_memory=budget)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    mp = out.shape[0] * out.shape[1] / 1e6
    return {"model": name, "output_mp": round(mp, 3), "cpu_s_per_mp": round(cpu / mp, 2), "wall_s_per_mp": round(wall / mp, 2)}


def main(argv=None) -> list:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_pretrained_speed")
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--lr-size", type=int, default=256)
    p.add_argument("--max-memory", default="2GB")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    img = _input(args.lr_size)
    rows = [measure(name, img, args.max_memory) for name in args.model]
    for r in rows:
        print(json.dumps(r))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
