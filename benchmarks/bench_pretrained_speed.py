"""CPU seconds per output megapixel of installed pretrained models (the README's table column).

    python -m benchmarks.bench_pretrained_speed --model realcugan_se_x2_nodenoise --model realsr_df2k_x4 [--tile 0]

Each model (from ``$SRKERAS_MODEL_DIR``) upscales a ``--lr-size`` square crop of Set14 ``baboon``
(default 256) through :func:`srkeras.inference.upscale`: once to warm up (tracing), then timed with
``time.process_time`` (CPU seconds of all threads, user + sys) and ``time.perf_counter`` (wall).
``--tile 0`` runs whole images (Real-CUGAN: its SE blocks average the whole image, so tiles would
change the output); by default tiles come from ``--max-memory``. Prints one JSON line per model.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SET14 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "Set14"


def measure(name: str, lr_size: int, tile: int | None, max_memory: str | None) -> dict:
    import numpy as np
    from PIL import Image

    from srkeras.inference import load_generator, upscale

    with Image.open(SET14 / "baboon.png") as im:
        x = np.asarray(im.convert("RGB").crop((0, 0, lr_size, lr_size)), np.float32) / 255.0
    served = load_generator(name)
    kw = {"tile": tile} if tile is not None else {"max_memory": max_memory}
    upscale(served, x, **kw)  # warm-up: tracing
    cpu, wall = time.process_time(), time.perf_counter()
    y = upscale(served, x, **kw)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    mp = y.shape[0] * y.shape[1] / 1e6
    return {"model": name, "lr": lr_size, "output_mp": round(mp, 3), "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
            "cpu_s_per_mp": round(cpu / mp, 2), "tile": tile, "threads": os.cpu_count()}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--lr-size", type=int, default=256)
    p.add_argument("--tile", type=int, default=None, help="tile size (0: whole image); default: from --max-memory")
    p.add_argument("--max-memory", default="2GB")
    a = p.parse_args(argv)
    for name in a.model:
        print(json.dumps(measure(name, a.lr_size, a.tile, a.max_memory)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
