"""Peak memory of the Try-it page with several visitors at once (issue 24, item 6).

    python -m benchmarks.bench_try_it_memory [--visitors 3] [--megapixels 4] [--slots 1 3]

Each visitor is a thread doing what the page does for one photo: take one of the server's run slots
(:func:`mos_app.try_it.run_slot`), :func:`~mos_app.try_it.super_resolve` the photo (8-bit SR and
bicubic kept for display, the PNG for download), then hand the PNG over
(:func:`~mos_app.try_it.hand_over`, which drops the arrays from the session's dict). Every
``--slots`` value runs in a fresh child process (``$TRYIT_CONCURRENT_RUNS``), whose own peak RSS
(``resource.getrusage(RUSAGE_SELF)`` in the child) and resident size after the visitors left are printed, so
slots = visitors is the unbounded behaviour the issue measured and slots = 1 the default. The model
is a fixed-seed ESPCN x2 (the memory of one run is its output and bands, not its weights); the input
is random noise of ``--megapixels`` (the issue used 16 MP).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time


def _visitors(n: int, megapixels: float) -> dict:
    """Run in the child: ``n`` concurrent visitors; peak and final RSS of this process in MB."""
    import keras
    import numpy as np

    from mos_app import try_it
    from srkeras import models

    keras.utils.set_random_seed(0)
    model = models.build("espcn", scale=2)
    side = int((megapixels * 1e6) ** 0.5)
    photo = np.random.default_rng(0).random((side, side, 3), dtype=np.float32)
    sessions: list[dict] = [{} for _ in range(n)]
    gate = threading.Barrier(n)

    def visitor(k: int) -> None:
        gate.wait()
        with try_it.run_slot():
            sessions[k] = try_it.super_resolve(model, photo, max_memory="1GB")
        try_it.hand_over(sessions[k])

    t0 = time.monotonic()
    threads = [threading.Thread(target=visitor, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open("/proc/self/statm") as f:
        resident = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": round(time.monotonic() - t0, 1), "peak_rss_mb": round(peak_kb / 1024),
            "resident_after_mb": round(resident / 2**20),
            "left_in_sessions": sum(len(s) for s in sessions)}


def measure(slots: int, visitors: int, megapixels: float) -> dict:
    """One child process with ``slots`` run slots; its results plus its peak RSS (MB)."""
    env = dict(os.environ, TRYIT_CONCURRENT_RUNS=str(slots), TF_CPP_MIN_LOG_LEVEL="3")
    code = (f"import json, benchmarks.bench_try_it_memory as b; "
            f"print(json.dumps(b._visitors({visitors}, {megapixels})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return {"slots": slots, "visitors": visitors, "megapixels": megapixels, **json.loads(out.stdout.strip().splitlines()[-1])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--visitors", type=int, default=3)
    p.add_argument("--megapixels", type=float, default=4.0)
    p.add_argument("--slots", type=int, nargs="+", default=[1, 3], help="run slots, one child process each")
    a = p.parse_args(argv)
    for slots in a.slots:
        print(json.dumps(measure(slots, a.visitors, a.megapixels)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
