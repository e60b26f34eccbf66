"""Network speed of catalogue architectures for the model cards (docs/models/): CPU seconds per
output megapixel of ``model(x)`` on one ``--lr-size`` square LR input, untiled, after a warm-up call,
random weights of the catalogued architecture (no download; speed does not depend on the weights).

    python -m benchmarks.bench_model_cards                      # the models the cards quote
    python -m benchmarks.bench_model_cards --model dat_light_x4 --lr-size 256
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT = ("realesr_animevideov3", "nmkd_yandereneo_superlite_x4", "dat_light_x2", "dat_light_x4")
# import-only architectures: 4x_WTP_descreenton's layout; BasicSR's MSRResNet and the paper's RCAN (defaults);
# SwinIR classical SR (180 dims, 6 x 6 layers, window 8) and lightweight
EXTRA = {"omnisr_x4": ("omnisr", 4, {}), "msrresnet_x4": ("msrresnet", 4, {}), "rcan_x4": ("rcan", 4, {}),
         "swinir_classical_x4": ("swinir", 4, {}),
         "swinir_light_x4": ("swinir", 4, {"embed_dim": 60, "depths": (6,) * 4, "num_heads": (6,) * 4,
                                           "upsampler": "pixelshuffledirect"})}  # fmt: skip


def measure(arch: str, scale: int, options: dict, lr_size: int) -> dict:
    import numpy as np

    from srkeras import models

    model = models.build(arch, scale, **options)
    x = np.random.default_rng(0).random((1, lr_size, lr_size, 3), dtype=np.float32)
    model(x[:, : lr_size // 2, : lr_size // 2], training=False)
    model(x, training=False)
    t0, c0 = time.perf_counter(), time.process_time()
    y = np.asarray(model(x, training=False))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    mp = y.shape[1] * y.shape[2] / 1e6
    return {"params": int(model.count_params()), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "cpu_s_per_output_mp": round(cpu / mp, 2)}  # fmt: skip


def main(argv=None) -> int:
    from srkeras.pretrained import catalogue

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", help=f"catalogue name or one of {', '.join(EXTRA)} (repeatable)")
    p.add_argument("--lr-size", type=int, default=128)
    args = p.parse_args(argv)
    for name in args.model or [*DEFAULT, *EXTRA]:
        if name in EXTRA:
            arch, scale, options = EXTRA[name]
        else:
            e = catalogue.get(name)
            arch, scale, options = e.arch, e.scale, e.options
        print(name, measure(arch, scale, options, args.lr_size), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
