"""Peak memory of the receptive-field probe of a model with a layer of unknown reach, per --max-memory budget.

    python -m benchmarks.bench_probe_memory [--budgets 1GB 4GB] [--json out.json]

The model stands for a user's own Keras generator (nothing in the catalogue needs the probe: their
fields come from the layer graph): x4, a 3x3 convolution, a custom layer (:class:`Reach`: the graph
walk cannot know its reach, so the probe runs), 3x3 convolutions dilated 1, 2, 4, ..., 32, 32, 32 (they
reach every offset up to 127 LR px, so the probe needs its 384 px size to see the field's edge), then nearest x2, 3x3 (32), nearest x2,
3x3 (32), 3x3 (3) at HR: the HR maps dominate the probe's memory, as in RRDBNet's tail.

Each budget runs in a fresh process (:func:`child`): build the model, run it once on 12x12 (TensorFlow
runtime, weights, traced graph: ``baseline_rss_mb``), then :func:`srkeras.inference.planning.limit_probe`
and the probe. Reported: the probe sizes the budget allows, the planner's estimate of the largest
(:func:`~srkeras.inference.planning.probe_bytes`), the receptive field found (``None``: past the largest
allowed size), the process's peak RSS (``ru_maxrss``) and its CPU seconds. Weights are random: the
memory and time do not depend on them.

Measured (AMD EPYC, 2 cores, no AVX-512; under load ~6-8: CPU seconds only), peak RSS of the process,
the probe's increment over the 640 MB baseline, and the estimate of the largest size allowed:

| --max-memory | probe sizes | receptive field | peak RSS | increment | estimate | probe CPU s |
|---|---|---|---|---|---|---|
| 20MB | refused before the probe: the 48 px probe needs 0.04 GB | - | 644 MB | 4 MB | - | - |
| 200MB | 48, 96 | None (past 96 px: warned) | 739 MB | 100 MB | 92 MB | 2.1 |
| 1GB | 48, 96, 192 | None (past 192 px: warned) | 929 MB | 287 MB | 368 MB | 6.1 |
| 4GB | 48, 96, 192, 384 | 130 | 1395 MB | 754 MB | 1412 MB | 24.4 |

Each increment stays under the budget's activation share (0.6 x budget: 120, 600, 2400 MB) and, but
at 96 px (9% over: the output chunk term), under the estimate. As for tiles, the budget bounds the
activations, not TensorFlow's ~640 MB runtime. (Before: every model probed up to 384 px whatever
the budget, here 1395 MB whatever ``--max-memory`` said.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def build():
    import keras

    class Reach(keras.layers.Layer):  # a user's own layer: its reach is unknown to the layer graph
        def call(self, x):
            return x * 1.0

    conv = keras.layers.Conv2D
    inp = keras.Input((None, None, 3))
    x = Reach()(conv(64, 3, padding="same")(inp))
    for d in (1, 2, 4, 8, 16, 32, 32, 32):  # contiguous reach (sparse dilations would leave gaps the probe skips)
        x = conv(64, 3, padding="same", dilation_rate=d, activation="relu")(x)
    x = conv(64, 3, padding="same")(x)
    for _ in range(2):
        x = conv(32, 3, padding="same", activation="relu")(keras.layers.UpSampling2D(2)(x))
    return keras.Model(inp, conv(3, 3, padding="same")(x), name="own_x4")


def child(budget: str) -> dict:
    import numpy as np

    from srkeras.inference import ServedModel, planning
    from srkeras.inference.runtime import run_model

    served = ServedModel(build())
    run_model(served.runner, np.zeros((1, 12, 12, 3), np.float32))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps = []
    served.progress = steps.append
    t = time.process_time()
    try:
        planning.limit_probe(served, budget)
    except planning.ProbeMemoryError as e:
        return {"budget": budget, "refused": str(e), "baseline_rss_mb": base}
    sizes = served.probe_sizes
    rf = served.receptive_field
    return {"budget": budget, "probe_sizes": list(sizes), "receptive_field": rf,
            "largest_probe_estimate_mb": planning.probe_bytes(served, sizes[-1]) / 1e6,
            "activation_share_mb": planning.ACTIVATION_SHARE * planning.parse_memory(budget) / 1e6,
            "probe_cpu_s": time.process_time() - t, "baseline_rss_mb": base, "steps": steps}  # fmt: skip


def run(budget: str) -> dict:
    """:func:`child` in a fresh process, with its peak RSS from ``os.wait4``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_probe_memory", "--child", budget],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return {"budget": budget, "error": f"exit {os.waitstatus_to_exitcode(status)}"}
    r = json.loads(out.decode().strip().splitlines()[-1])
    r.update(peak_rss_mb=ru.ru_maxrss / 1024, cpu_s=ru.ru_utime + ru.ru_stime)
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budgets", nargs="+", default=["20MB", "200MB", "1GB", "4GB"])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child)), flush=True)
        return 0
    results = []
    for b in a.budgets:
        r = run(b)
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "steps"}), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"load": os.getloadavg(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
