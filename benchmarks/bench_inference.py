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
* Tiling overhead: SRResNet on an image large enough that the budget tiles it but small enough
  that the untiled run still fits in RAM (--full: 600x600 LR -> 2400x2400 under 2 GB; short:
  160x160 under 250 MB), tiled (plan from the budget) vs ``tile=0``; target <= 15%. Also the
  plan's work ratio (FLOPs computed with overlaps / untiled FLOPs) at the memory sizes.
* bfloat16 (where the CPU has it): speed and PSNR of the bfloat16 output against float32.
* Try-it page (``--only try_it``): peak RSS of :func:`mos_app.try_it.super_resolve` (what the
  page runs on Upscale: tiled SR, 8-bit SR and bicubic for display, the download PNG) on a
  12-megapixel "phone photo" (4000x3000, a scikit-image photo resized up plus sensor-like noise)
  at x4 with ESPCN (random weights: the memory is the output's, not the model's), in a child
  process. Short run: 1000x750.
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

    from srkeras.inference import plan, tile_count, upscale_to_png
    from srkeras.inference.planning import plan_bytes, work_ratio
    from srkeras.models import build

    model = build("srresnet", scale=4)
    img = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
    p = plan(model, (size, size), max_memory=budget)
    info = {"plan": vars(p), "tiles": tile_count(model, img.shape, max_memory=budget),
            "plan_mb": plan_bytes(model, (size, size), p) / 1e6, "work_ratio": work_ratio(model, (size, size), p)}
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as d, open(os.path.join(d, "sr.png"), "wb") as f:
        upscale_to_png(model, img, f, max_memory=budget, level=1)
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"size": size, "maxrss_mb": rss, "seconds": dt, "load": os.getloadavg()[0], **info}))


def _child_try_it(width: int, budget: str) -> None:
    import numpy as np

    from mos_app.try_it import super_resolve
    from srkeras.data import imresize
    from srkeras.data.samples import sample_image
    from srkeras.models import build

    h = width * 3 // 4
    base = sample_image("astronaut")  # 512 x 512
    photo = np.clip(imresize(base, output_shape=(h, width)) + np.random.default_rng(0).normal(0, 0.02, (h, width, 3)), 0, 1)
    photo = photo.astype(np.float32)
    model = build("espcn", scale=4, channels=3)
    t = time.perf_counter()
    res = super_resolve(model, photo, max_memory=budget)
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"width": width, "height": h, "out_mp": 16 * width * h / 1e6, "maxrss_mb": rss, "seconds": dt,
                      "png_mb": len(res["png"]) / 1e6, "load": os.getloadavg()[0]}))


def _in_child(*args: str) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_inference", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def memory(size: int, budget: str) -> dict:
    return _in_child("--child-memory", str(size), "--budget", budget)


def _cpu_seconds() -> float:
    """User + system CPU time of this process: less sensitive than wall time to other jobs on a shared box."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _time(fn, repeat=2):
    fn()  # warm-up: tracing, oneDNN primitive creation
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def conv_gflops(size=192) -> float:
    import keras
    import numpy as np
    import tensorflow as tf

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
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    taps = keras.Model(model.inputs, [layer.output for layer in convs])
    specs = taps.compute_output_spec(keras.KerasTensor((1, n, n, model.input_shape[-1])))
    for layer, sp in zip(convs, specs if isinstance(specs, (list, tuple)) else [specs]):
        kh, kw, cin, cout = layer.kernel.shape
        total += 2.0 * kh * kw * cin * cout * (sp.shape[1] * sp.shape[2]) / (n * n)
    return total


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--full", action="store_true", help="issue sizes (1000^2 and 2000^2 LR for memory; slow)")
    p.add_argument("--json", default=None)
    p.add_argument("--budget", default="2GB")
    p.add_argument("--only", choices=("memory", "speed", "tiling", "try_it"), default=None, help="run one part")
    p.add_argument("--child-memory", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-try-it", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_memory:
        _child_memory(args.child_memory, args.budget)
        return 0
    if args.child_try_it:
        _child_try_it(args.child_try_it, args.budget)
        return 0

    import numpy as np

    from srkeras.models import build

    res: dict = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg()}
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    sizes = (1000, 2000) if args.full else (250, 500)
    run = lambda part: args.only in (None, part)  # noqa: E731
    mem = [memory(s, args.budget) for s in sizes] if run("memory") else []
    res["memory"] = mem
    if mem:
        _print_memory(mem, sizes, args.budget)
    rng = np.random.default_rng(0)
    lr = 96 if not args.full else 256
    img = rng.random((lr, lr, 3), dtype=np.float32)
    if run("speed"):
        _speed(res, img, lr, args)
    m = build("srresnet", scale=4)
    if run("tiling"):
        _tiling(res, m, rng, mem, args)
    res["load_after"] = os.getloadavg()
    if run("speed"):
        _bf16(res, m, img, lr)
    if run("try_it"):
        width = 4000 if args.full else 1000
        t = res["try_it"] = _in_child("--child-try-it", str(width), "--budget", "1GB")
        print(f"\nTry-it page, {t['width']}x{t['height']} photo x4 ESPCN ({t['out_mp']:.0f} output MP, budget 1GB): "
              f"peak RSS {t['maxrss_mb']:.0f} MB, {t['seconds']:.1f} s, PNG {t['png_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


def _print_memory(mem, sizes, budget):
    growth = mem[1]["maxrss_mb"] / mem[0]["maxrss_mb"] - 1
    print(f"\nPeak RSS, SRResNet x4, budget {budget} (streamed PNG output):")
    for m in mem:
        print(f"  {m['size']:>5}^2 LR -> {4 * m['size']}^2: {m['maxrss_mb']:8.0f} MB  ({m['seconds']:.1f} s, "
              f"{(4 * m['size']) ** 2 / m['seconds'] / 1e6:.3f} out MP/s, load {m['load']:.1f})")
    print(f"  growth {sizes[0]}^2 -> {sizes[1]}^2: {100 * growth:.1f}%  (target < 20%; < 3 GB at 2000^2)")


def _speed(res, img, lr, args):
    from srkeras.inference import upscale
    from srkeras.models import build

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
        dt = _time(lambda m=m: upscale(m, img, max_memory=args.budget), repeat=2)
        mp = (lr * 4) ** 2 / dt / 1e6
        gf = model_flops_per_lr_pixel(m) * lr * lr / dt / 1e9
        res["models"][name] = {"params": m.count_params(), "out_mp_s": mp, "gflops": gf, "seconds": dt}
        print(f"  {name:<16}{m.count_params():>11,}{mp:>10.3f}{gf:>9.1f}{100 * gf / res['conv_gflops']:>7.0f}%")


def _tiling(res, m, rng, mem, args):
    import numpy as np

    from srkeras.inference import upscale
    from srkeras.inference.planning import count_tiles, plan, work_ratio

    n, budget = (600, "2GB") if args.full else (160, "250MB")
    big = rng.random((n, n, 3), dtype=np.float32)
    pl = plan(m, (n, n), max_memory=budget)
    upscale(m, big[:128, :128], max_memory=budget)  # trace the trunk and tail runners
    upscale(m, big[:128, :128], tile=0)
    wall = {"untiled": float("inf"), "tiled": float("inf")}
    cpu = dict(wall)
    for _ in range(2):  # alternate, so a change in the machine's load hits both alike
        for name, kw in (("untiled", {"tile": 0}), ("tiled", {"max_memory": budget})):
            t, c = time.perf_counter(), _cpu_seconds()
            upscale(m, big, **kw)
            wall[name] = min(wall[name], time.perf_counter() - t)
            cpu[name] = min(cpu[name], _cpu_seconds() - c)
    work = work_ratio(m, (n, n), pl) - 1
    res["tiling"] = {"size": n, "budget": budget, "wall_s": wall, "cpu_s": cpu,
                     "overhead": wall["tiled"] / wall["untiled"] - 1, "overhead_cpu": cpu["tiled"] / cpu["untiled"] - 1,
                     "extra_flops": work, "plan": vars(pl), "tiles": count_tiles((n, n), pl)}  # fmt: skip
    print(f"\nTiling overhead, SRResNet {n}^2 LR -> {4 * n}^2, budget {budget} vs untiled (target <= 15%): "
          f"wall {100 * res['tiling']['overhead']:.1f}% ({wall['tiled']:.2f} s vs {wall['untiled']:.2f} s), "
          f"CPU time {100 * res['tiling']['overhead_cpu']:.1f}% ({cpu['tiled']:.2f} s vs {cpu['untiled']:.2f} s)")
    print(f"  plan: trunk cores <= {pl.tile}x{pl.tile_w} + margin {pl.overlap}, tail cores <= {pl.tail_tile} + margin "
          f"{pl.tail_overlap}, {count_tiles((n, n), pl)} tiles; FLOPs computed twice: {100 * work:.1f}%")
    for mm in mem:
        print(f"  at {mm['size']}^2 under {args.budget}: {mm['tiles']} tiles, extra FLOPs {100 * (mm['work_ratio'] - 1):.1f}%, "
              f"plan estimate {mm['plan_mb']:.0f} MB + runtime")


def _bf16(res, m, img, lr):
    from srkeras.inference import upscale
    from srkeras.inference.serving import as_bfloat16, bf16_supported
    from srkeras.metrics import psnr

    if bf16_supported():
        mb = as_bfloat16(m)
        a = upscale(m, img, tile=0)
        t_f = _time(lambda: upscale(m, img, tile=0), repeat=1)
        t_b = _time(lambda: upscale(mb, img, tile=0), repeat=1)
        b = upscale(mb, img, tile=0)
        res["bfloat16"] = {"seconds": t_b, "float32_seconds": t_f, "psnr_vs_float32": psnr(b, a, y_channel=False)}
        print(f"\nbfloat16 SRResNet {lr}^2: {t_b:.2f} s vs float32 {t_f:.2f} s; PSNR of bf16 output vs float32: "
              f"{res['bfloat16']['psnr_vs_float32']:.1f} dB")
    else:
        print("\nbfloat16: this CPU has no native bfloat16; skipped")


if __name__ == "__main__":
    sys.exit(main())
