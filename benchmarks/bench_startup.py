"""Fresh-process ``pipelines.upscale``: start-up and marginal CPU seconds, float32 vs bfloat16.

    python -m benchmarks.bench_startup [--model realesrgan_x4plus] [--repeats 3] [--startup-only] [--json out.json]

Each run is a new ``python -m pipelines.upscale`` process (the model installed with ``python -m
pipelines.pretrained fetch``) on a 16x16 and on a 256x256 input (centre crops of Set14's baboon
downscaled x4, or a scikit-image photo), at ``--precision float32`` and ``bfloat16``, runs
interleaved. Reported per run: CPU seconds of the child (user + system, ``RUSAGE_CHILDREN``), its
peak RSS; per precision: the start-up (16x16 run) and the marginal CPU seconds per output
megapixel ((256x256 run - 16x16 run) / the output megapixels added); and the PSNR (RGB, 8-bit
files) of the bfloat16 output against the float32 output. The start-up's breakdown comes from a
second fresh process per run that does what the command does and reads its own CPU seconds after
each step: *import* (the command's modules and TensorFlow), *load* (``load_generator`` and its runner: from the
installed model's serving artifact, :mod:`srkeras.inference.compiled`, in float32), *first tile*
(reading the 16x16 image and upscaling it: pre-padded, one model call). One unmeasured run first
writes the serving artifact if it is missing. Each figure is the median of the runs. The box is
shared: CPU seconds, not wall time, are compared, and the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (16, 256)
PRECISIONS = ("float32", "bfloat16")


def make_inputs(folder: Path) -> dict:
    import numpy as np
    from PIL import Image

    from srkeras.data import imresize, read_image

    src = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "Set14" / "baboon.png"
    if src.is_file():
        hr = read_image(src).pixels[..., :3]
    else:
        from skimage import data

        hr = data.astronaut().astype(np.float32) / 255.0
    lr = np.clip(imresize(hr, 0.25), 0, 1)
    out = {}
    for n in SIZES:
        reps = -(-n // min(lr.shape[:2]))
        big = np.tile(lr, (reps, reps, 1))
        y, x = (big.shape[0] - n) // 2, (big.shape[1] - n) // 2
        path = folder / f"in{n}.png"
        Image.fromarray(np.round(big[y : y + n, x : x + n] * 255).astype(np.uint8)).save(path)
        out[n] = path
    return out


def _run(model: str, src: Path, out: Path, precision: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "pipelines.upscale", str(src), "--model", model, "--out", str(out), "--overwrite",
           "--quiet", "--precision", precision]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cpu_s": cpu, "wall_s": time.perf_counter() - t, "maxrss_mb": after.ru_maxrss / 1024, "stderr": res.stderr[-500:]}


# The start-up's steps in a fresh process, timed by the process itself (module docstring).
_BREAKDOWN = """
import json, os, resource, sys
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
t0 = cpu()
model, src, precision = sys.argv[1:4]
os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
from srkeras.inference.lean import lean_tensorflow
from srkeras.inference.quiet import quiet_tensorflow
quiet_tensorflow(); lean_tensorflow()
import tensorflow
import pipelines.upscale
from srkeras.data import read_image
from srkeras.inference import load_generator, upscale
t1 = cpu()
served = load_generator(model, dtype="float32", precision=precision)
served.runner  # the artifact's function and weights (else read on the first call)
t2 = cpu()
upscale(served, read_image(src).pixels)
t3 = cpu()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "first_tile": t3 - t2, "artifact": served.compiled is not None}))
"""


def _breakdown(model: str, src: Path, precision: str) -> dict:
    res = subprocess.run([sys.executable, "-c", _BREAKDOWN, model, str(src), precision], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"start-up breakdown failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _psnr_files(a: Path, b: Path) -> float:
    import numpy as np
    from PIL import Image

    x = np.asarray(Image.open(a), dtype=np.float64)
    y = np.asarray(Image.open(b), dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main(argv=None) -> int:
    from srkeras.inference.precision import cpu_bf16_flags, cpu_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="realesrgan_x4plus")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--startup-only", action="store_true", help="float32 16x16 runs and the breakdown only")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    precisions = PRECISIONS if cpu_bf16_flags() and not args.startup_only else ("float32",)
    sizes = SIZES[:1] if args.startup_only else SIZES
    info = {"cpu": cpu_model(), "bf16_flags": cpu_bf16_flags(), "cores": os.cpu_count(), "load_before": os.getloadavg()}
    print(f"CPU {info['cpu']} ({info['cores']} cores), bf16 flags {info['bf16_flags']}, load {info['load_before']}")
    runs = {(p, n): [] for p in precisions for n in sizes}
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        inputs = make_inputs(folder)
        _run(args.model, inputs[SIZES[0]], folder / "warm-up", "float32")  # writes the serving artifact if missing
        steps = []
        for r in range(args.repeats):
            steps.append(_breakdown(args.model, inputs[SIZES[0]], "float32"))
            b = steps[-1]
            print(f"  run {r}: float32 start-up steps: import {b['import']:.2f}, load {b['load']:.2f}, first tile "
                  f"{b['first_tile']:.2f} CPU-s ({'serving artifact' if b['artifact'] else 'from the .keras'})", flush=True)
        for r in range(args.repeats):
            for n in sizes:
                for p in precisions:  # interleaved: a change of load hits both precisions
                    out = folder / f"out_{p}_{n}"
                    res = _run(args.model, inputs[n], out, p)
                    runs[(p, n)].append(res)
                    print(f"  run {r}: {p:8} {n:3}x{n:<3} {res['cpu_s']:7.2f} CPU-s  {res['wall_s']:7.2f} s wall  "
                          f"peak RSS {res['maxrss_mb']:.0f} MB", flush=True)  # fmt: skip
        psnr = None
        if "bfloat16" in precisions:
            psnr = _psnr_files(folder / "out_bfloat16_256" / "in256.png", folder / "out_float32_256" / "in256.png")
    added_mp = (SIZES[1] ** 2 - SIZES[0] ** 2) * args.scale**2 / 1e6
    summary = {}
    for p in precisions:
        start = statistics.median(x["cpu_s"] for x in runs[(p, 16)])
        summary[p] = {"startup_cpu_s": start, "startup_min_cpu_s": min(x["cpu_s"] for x in runs[(p, 16)])}
        line = f"{p:8}: start-up {start:.2f} CPU-s (median; min {summary[p]['startup_min_cpu_s']:.2f})"
        if (p, 256) in runs:
            big = statistics.median(x["cpu_s"] for x in runs[(p, 256)])
            summary[p].update(cpu_s_256=big, marginal_cpu_s_per_mp=(big - start) / added_mp)
            line += f", 256x256 {big:.2f} CPU-s, marginal {summary[p]['marginal_cpu_s_per_mp']:.2f} CPU-s/MP"
        print(line)
    parts = {k: statistics.median(b[k] for b in steps) for k in ("import", "load", "first_tile")}
    summary["float32_startup_steps"] = {**parts, "sum": sum(parts.values()), "artifact": all(b["artifact"] for b in steps)}
    print(f"float32 start-up steps (median CPU-s): import {parts['import']:.2f} + load {parts['load']:.2f} + first tile "
          f"{parts['first_tile']:.2f} = {sum(parts.values()):.2f}; the command's total {summary['float32']['startup_cpu_s']:.2f} "
          "(also argument parsing, the output PNG, interpreter start and exit)")  # fmt: skip
    if "bfloat16" in summary:
        ratio = summary["float32"]["marginal_cpu_s_per_mp"] / summary["bfloat16"]["marginal_cpu_s_per_mp"]
        print(f"bfloat16: {ratio:.2f}x fewer marginal CPU-s than float32; PSNR vs float32 {psnr:.2f} dB")
        summary["ratio"], summary["psnr_bf16_vs_fp32"] = ratio, psnr
    info["load_after"] = os.getloadavg()
    print(f"load after: {info['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "summary": summary,
                                               "runs": {f"{p}_{n}": v for (p, n), v in runs.items()}}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
