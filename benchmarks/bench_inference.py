"""Inference benchmark: memory bound, speed, conv efficiency, tiling overhead, bfloat16 cost.

    python -m benchmarks.bench_inference            # short run (small images; a shared 2-core box)
    python -m benchmarks.bench_inference --full     # the issue's sizes: 1000^2 and 2000^2 LR, x4
    python -m benchmarks.bench_inference --json out.json

* Peak resident memory (``ru_maxrss`` of a child process that only does this job) upscaling an
  N x N LR image x4 with SRResNet (random weights) under a 2 GB budget, through the CLI's
  streaming path (tiles -> bands -> PNG written band by band). Targets: < 3 GB at 2000^2, and
  < 20% growth from 1000^2 to 2000^2.
* Speed in output megapixels/s per model (tiled, default budget).
* Achieved GFLOP/s of SRResNet (FLOPs counted from its Conv2D layers: 2 k_h k_w C_in C_out per
  output pixel) against a 3x3 64->64 Conv2D measured in the same run; target >= 60%.
* Tiling overhead: tiled vs untiled time on the same image; target <= 15%.
* bfloat16 (where the CPU has it): speed and PSNR of the bfloat16 output against float32.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _child_memory(size: int, budget: str) -> None:
    import numpy as np

    from srkeras.data.png16 import PngStreamWriter
    from srkeras.inference import upscale_bands
    from srkeras.models import build

    model = build("srresnet", scale=4)
    img = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as d, open(os.path.join(d, "sr.png"), "wb") as f:
        wr = PngStreamWriter(f, size * 4, size * 4, 3, bit_depth=8, level=1)
        for _, band, _ in upscale_bands(model, img, max_memory=budget):
            wr.write(band)
        wr.close()
    dt = time.perf_counter() - t
    print(json.dumps({"size": size, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": dt}))


def memory(size: int, budget: str) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_inference", "--child-memory", str(size), "--budget", budget]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _time(fn, repeat=2):
    fn()  # warm-up: tracing, oneDNN primitive creation
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def conv_gflops(size=192) -> float:
    import numpy as np
    import tensorflow as tf

    import keras

    conv = keras.layers.Conv2D(64, 3, padding="same")
    x = np.random.default_rng(0).random((1, size, size, 64), dtype=np.float32)
    f = tf.function(lambda t: conv(t))
    dt = _time(lambda: f(x).numpy(), repeat=3)
    return 2 * 9 * 64 * 64 * size * size / dt / 1e9


def model_flops_per_lr_pixel(model) -> float:
    """Conv2D FLOPs per LR input pixel, each layer weighted by its output area relative to the input."""
    import keras

    n = 16
    total = 0.0
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    probe = keras.Model(model.inputs, [l.output for l in convs])
    specs = probe.compute_output_spec(keras.KerasTensor((1, n, n, model.input_shape[-1])))
    for l, sp in zip(convs, specs if isinstance(specs, (list, tuple)) else [specs]):
        kh, kw, cin, cout = l.kernel.shape
        total += 2.0 * kh * kw * cin * cout * (sp.shape[1] * sp.shape[2]) / (n * n)
    return total


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--full", action="store_true", help="issue sizes (1000^2 and 2000^2 LR for memory; slow)")
    p.add_argument("--json", default=None)
    p.add_argument("--budget", default="2GB")
    p.add_argument("--child-memory", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_memory:
        _child_memory(args.child_memory, args.budget)
        return 0

    import numpy as np

    from srkeras.inference import upscale
    from srkeras.inference.serving import as_bfloat16, bf16_supported
    from srkeras.metrics import psnr
    from srkeras.models import build

    res: dict = {"cpu_count": os.cpu_count()}
    sizes = (1000, 2000) if args.full else (250, 500)
    mem = [memory(s, args.budget) for s in sizes]
    res["memory"] = mem
    growth = mem[1]["maxrss_mb"] / mem[0]["maxrss_mb"] - 1
    print(f"\nPeak RSS, SRResNet x4, budget {args.budget} (streamed PNG output):")
    for m in mem:
        print(f"  {m['size']:>5}^2 LR -> {4 * m['size']}^2: {m['maxrss_mb']:8.0f} MB  ({m['seconds']:.1f} s)")
    print(f"  growth {sizes[0]}^2 -> {sizes[1]}^2: {100 * growth:.1f}%  (target < 20%; < 3 GB at 2000^2)")

    rng = np.random.default_rng(0)
    lr = 96 if not args.full else 256
    img = rng.random((lr, lr, 3), dtype=np.float32)
    res["conv_gflops"] = conv_gflops()
    print(f"\n3x3 64->64 Conv2D: {res['conv_gflops']:.1f} GFLOP/s")
    print(f"\nSpeed on {lr}x{lr} LR (tiled, budget {args.budget}):")
    print(f"  {'model':<16}{'params':>11}{'out MP/s':>10}{'GFLOP/s':>9}{'% conv':>8}")
    models = {
        "srcnn_915_y": build("srcnn", scale=4, channels=1),
        "espcn_y": build("espcn", scale=4, channels=1),
        "srresnet": build("srresnet", scale=4),
        "rrdbnet_b4": build("rrdbnet", scale=4, num_blocks=4),
    }
    if args.full:
        models["rrdbnet"] = build("rrdbnet", scale=4)
    res["models"] = {}
    for name, m in models.items():
        dt = _time(lambda: upscale(m, img, max_memory=args.budget), repeat=2)
        mp = (lr * 4) ** 2 / dt / 1e6
        gf = model_flops_per_lr_pixel(m) * lr * lr / dt / 1e9
        res["models"][name] = {"params": m.count_params(), "out_mp_s": mp, "gflops": gf, "seconds": dt}
        print(f"  {name:<16}{m.count_params():>11,}{mp:>10.3f}{gf:>9.1f}{100 * gf / res['conv_gflops']:>7.0f}%")

    m = models["srresnet"]
    t_untiled = _time(lambda: upscale(m, img, tile=0), repeat=2)
    t_tiled = _time(lambda: upscale(m, img, tile=lr // 2), repeat=2)
    from srkeras.inference.tiling import count_tiles, plan

    pl = plan(m, (lr, lr), tile=lr // 2)
    work = count_tiles((lr, lr), pl) * min(pl.window, lr) ** 2 / lr**2 - 1
    big = plan(m, (4000, 4000), max_memory=args.budget)
    work_big = (big.window / big.tile) ** 2 - 1
    res["tiling"] = {"untiled_s": t_untiled, "tiled_s": t_tiled, "tile": lr // 2, "overhead": t_tiled / t_untiled - 1,
                     "extra_pixels": work, "budget_plan": vars(big), "budget_plan_extra_pixels": work_big}
    print(f"\nTiling overhead, SRResNet {lr}^2 in {lr // 2}px tiles vs untiled: {100 * (t_tiled / t_untiled - 1):.1f}% "
          f"({t_tiled:.2f} s vs {t_untiled:.2f} s; target <= 15%); overlap pixels computed twice: {100 * work:.0f}%")
    print(f"  under the {args.budget} budget a large image gets core {big.tile}px + overlap {big.overlap}px tiles: "
          f"{100 * work_big:.0f}% extra pixels, the floor of the tiling overhead")

    if bf16_supported():
        mb = as_bfloat16(m)
        a = upscale(m, img, tile=0)
        t_b = _time(lambda: upscale(mb, img, tile=0), repeat=1)
        b = upscale(mb, img, tile=0)
        res["bfloat16"] = {"seconds": t_b, "float32_seconds": t_untiled, "psnr_vs_float32": psnr(b, a, y_channel=False)}
        print(f"\nbfloat16 SRResNet: {t_b:.2f} s vs float32 {t_untiled:.2f} s; PSNR of bf16 output vs float32: "
              f"{res['bfloat16']['psnr_vs_float32']:.1f} dB")
    else:
        print("\nbfloat16: this CPU has no native bfloat16; skipped")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
