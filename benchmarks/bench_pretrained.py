"""Start-up cost of a pretrained model: load + receptive field from the sidecar vs. probing.

    python -m benchmarks.bench_pretrained                      # realesr_animevideov3, random weights
    python -m benchmarks.bench_pretrained --model realesrgan_x4plus --installed   # a fetched model

Without ``--installed`` the catalogue architecture is built with random weights and saved to a
temporary ``.keras`` (no download); the receptive field does not depend on the weights' values
much, only the timings matter here. Prints seconds for: loading the ``.keras``, reading the
sidecar, probing scale + receptive field (what serving does without a sidecar), and one x4
inference of a 64x64 tile.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_pretrained")
    p.add_argument("--model", default="realesr_animevideov3")
    p.add_argument("--installed", action="store_true", help="use the fetched model in $SRKERAS_MODEL_DIR")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import keras
    import numpy as np

    from srkeras import models, pretrained
    from srkeras.inference import probing

    with tempfile.TemporaryDirectory() as tmp:
        if args.installed:
            path = pretrained.resolve(args.model)
            if path is None:
                raise SystemExit(f"{args.model} is not installed: python -m pipelines.pretrained fetch {args.model}")
        else:
            e = pretrained.get(args.model)
            path = Path(tmp) / f"{args.model}.keras"
            models.build(e.arch, e.scale, **e.options).save(path)
        model, t_load = _timed(lambda: keras.models.load_model(path))
        meta, t_side = _timed(lambda: pretrained.sidecar(path))
        rf, t_probe = _timed(lambda: (probing.model_scale(model), probing.receptive_field(model)))
        x = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
        _, t_run = _timed(lambda: model(x))
    result = {
        "model": args.model, "load_s": round(t_load, 3), "sidecar_s": round(t_side, 4),
        "sidecar_receptive_field": (meta or {}).get("receptive_field"), "probe_s": round(t_probe, 3),
        "probed_scale_rf": list(rf), "infer_64px_s": round(t_run, 3),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
