"""Model zoo cost: parameters, analytic GFLOPs per output megapixel, CPU forward time.

    python -m benchmarks.bench_models [--size 128] [--scale 4] [--repeats 3] [--models a,b] [--json out.json]

Compute is counted analytically from the layer configs and the per-layer output shapes at the
benchmark input size: multiply-accumulates (MACs) of Conv2D (out_h*out_w*kh*kw*cin*cout),
Conv2DTranspose (in_h*in_w*kh*kw*cin*cout), BicubicUpsample (its 5x5 depthwise filter per output
phase, 25 MACs per HR pixel and channel) and Dense (in*out). Reported as GFLOPs = 2 * MACs / 1e9.
Bias adds, BN, activations, additions, concatenations and resampling are not counted (they are
<1% of the convolutions here). Generators: GFLOPs per output (HR) megapixel, independent of the LR
size up to border effects. Discriminators: GFLOPs per image at their fixed input size.

Timing: ``predict_on_batch`` of one image (generators: ``size`` x ``size`` LR, RGB or Y as built;
discriminators: their input size) on the CPU, median of ``repeats`` runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

DEFAULT_MODELS = [
    "srcnn",
    "srcnn_955",
    "espcn",
    "srresnet",
    "rrdbnet",
    "johnson",
    "srgan_discriminator",
    "esrgan_discriminator",
]


def count_macs(model, input_shape) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on an input of ``input_shape`` (N, H, W, C)."""
    import keras

    from srkeras.models.layers import BicubicUpsample

    counted = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense, BicubicUpsample)
    layers = [layer for layer in model.layers if isinstance(layer, counted)]
    if not layers:
        return 0
    probe = keras.Model(model.inputs, [layer.input for layer in layers] + [layer.output for layer in layers])
    specs = probe.compute_output_spec(keras.KerasTensor(tuple(input_shape)))
    ins, outs = specs[: len(layers)], specs[len(layers) :]
    total = 0
    for layer, i, o in zip(layers, ins, outs):
        if isinstance(layer, keras.layers.Conv2DTranspose):
            kh, kw, cout, cin = layer.kernel.shape
            total += int(np.prod(i.shape[:3])) * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin_g, cout = layer.kernel.shape
            total += int(np.prod(o.shape[:3])) * kh * kw * cin_g * cout
        elif isinstance(layer, BicubicUpsample):
            total += int(np.prod(o.shape)) * 25
        else:  # Dense
            total += int(np.prod(i.shape)) * int(layer.units)
    return total


def _build(name, scale):
    from srkeras import models

    if models.spec(name).kind == "discriminator":
        return models.build(name)
    return models.build(name, scale=scale)


def bench(name, size, scale, repeats):
    import keras

    model = _build(name, scale)
    generator = model.input_shape[1] is None
    shape = (1, size, size, model.input_shape[-1]) if generator else (1, *model.input_shape[1:])
    macs = count_macs(model, shape)
    x = np.random.default_rng(0).random(shape).astype("float32")
    model.predict_on_batch(x)  # warm-up: traces the graph
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        y = model.predict_on_batch(x)
        times.append(time.perf_counter() - t)
    row = {
        "model": model.name,
        "params": int(model.count_params()),
        "trainable": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "input": "x".join(map(str, shape[1:])),
        "output": "x".join(map(str, np.shape(y)[1:])),
        "gmacs": macs / 1e9,
        "gflops": 2 * macs / 1e9,
        "cpu_s": statistics.median(times),
    }
    if generator:
        out_mp = np.prod(np.shape(y)[1:3]) / 1e6
        row["gflops_per_mp"] = 2 * macs / 1e9 / out_mp
    keras.backend.clear_session()
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=128, help="LR height and width for generators")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tqdm import tqdm

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    rows = []
    for name in tqdm(names, desc="models", unit="model"):
        rows.append(bench(name, args.size, args.scale, args.repeats))

    print(
        f"\nx{args.scale}, generators on a {args.size}x{args.size} LR image, batch 1, CPU "
        f"({os.cpu_count()} cores visible), median of {args.repeats} after warm-up; FLOPs = 2 * MACs"
    )
    head = f"{'model':<26}{'params':>12}{'trainable':>12}{'input':>14}{'output':>14}{'GFLOPs':>10}{'GFLOPs/MP':>11}{'CPU s':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        per_mp = f"{r['gflops_per_mp']:.1f}" if "gflops_per_mp" in r else "-"
        print(
            f"{r['model']:<26}{r['params']:>12,}{r['trainable']:>12,}{r['input']:>14}{r['output']:>14}"
            f"{r['gflops']:>10.2f}{per_mp:>11}{r['cpu_s']:>9.3f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": args.size, "scale": args.scale, "repeats": args.repeats, "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
