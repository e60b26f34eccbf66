"""Data-layer latency of the MOS rater app under 20 concurrent raters: submit -> next trial fetched.

    python -m benchmarks.bench_mos [--raters 20] [--trials 30] [--think-ms 0] [--db URL ...] [--json out.json]

Each rater is a thread doing what the app does per answer: ``submit_rating``, then (unless that completed
the rater) one ``rater_state`` read and ``show_trial`` of the next trial (``next_trial_ms``); the timed
span is from the start of the submit to the next trial's display being recorded (the data-layer part of
"submit to next image rendered"; the page render is measured by the app's benchmark). Also timed:
``start_rater`` (assigns the whole list under the study lock) with all raters starting at once.
``--think-ms`` adds a uniform random 0..2x pause between answers (0 = worst-case contention).
Backends: a temporary SQLite file, plus PostgreSQL when ``SRKERAS_TEST_PG_URL`` is set (a temporary
schema, dropped afterwards), or the ``--db`` URLs given (their database must be empty or new).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def _pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q / 100
    lo, hi = int(np.floor(k)), int(np.ceil(k))
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _images(folder: Path, n: int, size: int = 64) -> Path:
    from srkeras.data import save_image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        base = rng.uniform(0, 1, (size // 8, size // 8, 3))
        img = np.kron(base, np.ones((8, 8, 1))) + rng.normal(0, 0.05, (size, size, 3))
        save_image(folder / f"b{i:03d}.png", np.clip(img, 0, 1).astype(np.float32), overwrite=True)
    return folder


def run_backend(url: str, work: Path, raters: int, trials: int, think_ms: float, n_images: int) -> dict:
    from db import next_trial, open_database, rater_state, show_trial, start_rater, study_status, submit_rating
    from jobs.mos_study import StudySpec, make_study

    make_study(StudySpec(
        name="bench", hr_dir=_images(work / "hr", n_images), db_url=url, stimuli_dir=work / "stimuli",
        scale=4, votes_per_stimulus=10**6, trials_per_rater=trials, repeats=2, progress=False,
    ), log=lambda m: None)
    db = open_database(url, serialize_sqlite_writes=os.environ.get("BENCH_SQLITE_LOCK", "1") == "1")
    gate = threading.Barrier(raters)
    lat, sub, nxt, starts = [], [], [], []
    lock = threading.Lock()

    def rater(i):
        rng = random.Random(i)
        gate.wait()
        t0 = time.perf_counter()
        tok = start_rater(db, "bench")
        t = next_trial(db, tok)
        with lock:
            starts.append(time.perf_counter() - t0)
        mine_l, mine_s, mine_n = [], [], []
        while t is not None:
            if think_ms:
                time.sleep(rng.uniform(0, 2 * think_ms) / 1000)
            a = time.perf_counter()
            done = submit_rating(db, tok, t.trial_id, score=rng.randint(1, 5), response_ms=3000).completed
            b = time.perf_counter()
            t = None if done else show_trial(db, rater_state(db, tok).trial)
            c = time.perf_counter()
            mine_l.append(c - a)
            mine_s.append(b - a)
            mine_n.append(c - b)
        with lock:
            lat.extend(mine_l)
            sub.extend(mine_s)
            nxt.extend(mine_n)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(raters) as ex:
        list(ex.map(rater, range(raters)))
    wall = time.perf_counter() - t0
    status = study_status(db, "bench")
    db.close()
    ms = lambda xs, q: 1000 * _pct(xs, q)  # noqa: E731
    return {
        "backend": url.split(":", 1)[0],
        "raters": raters,
        "answers": len(lat),
        "stored": status["ratings"],
        "submit_to_next_ms": {"p50": ms(lat, 50), "p95": ms(lat, 95), "p99": ms(lat, 99), "max": ms(lat, 100),
                              "mean": 1000 * statistics.fmean(lat)},
        "submit_ms": {"p50": ms(sub, 50), "p95": ms(sub, 95)},
        "next_trial_ms": {"p50": ms(nxt, 50), "p95": ms(nxt, 95)},
        "start_rater_ms": {"p50": ms(starts, 50), "p95": ms(starts, 95), "max": ms(starts, 100)},
        "answers_per_s": len(lat) / wall,
        "wall_s": wall,
    }


def _pg_schema(base: str):
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    eng = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with eng.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"

    def drop():
        with eng.connect() as c:
            c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        eng.dispose()

    return f"{base}{sep}options=-csearch_path%3D{schema}", drop


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raters", type=int, default=20)
    ap.add_argument("--trials", type=int, default=30, help="trials per rater (cap, repeats included)")
    ap.add_argument("--images", type=int, default=11, help="source images (1 becomes calibration)")
    ap.add_argument("--think-ms", type=float, default=0.0, help="mean pause between answers")
    ap.add_argument("--db", action="append", default=[], help="database URL(s) to use instead of the defaults")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_mos_") as tmp:
        tmp = Path(tmp)
        targets = [(u, None) for u in args.db]
        if not targets:
            targets.append((f"sqlite:///{tmp / 'sqlite' / 'mos.db'}", None))
            pg = os.environ.get("SRKERAS_TEST_PG_URL")
            if pg:
                targets.append(_pg_schema(pg))
        for i, (url, cleanup) in enumerate(targets):
            try:
                results.append(run_backend(url, tmp / f"w{i}", args.raters, args.trials, args.think_ms, args.images))
            finally:
                if cleanup:
                    cleanup()

    print(f"{args.raters} concurrent raters x {args.trials} trials, think time {args.think_ms:g} ms, "
          f"{os.cpu_count()} CPU cores")
    head = f"{'backend':<12}{'answers':>8}{'stored':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    head += f"{'submit p50':>12}{'next p50':>10}{'start p95':>11}{'ans/s':>8}"
    print("submit -> next trial fetched (data layer)")
    print(head)
    for r in results:
        L = r["submit_to_next_ms"]
        print(f"{r['backend']:<12}{r['answers']:>8}{r['stored']:>8}{L['p50']:>9.1f}{L['p95']:>9.1f}{L['p99']:>9.1f}"
              f"{L['max']:>9.1f}{r['submit_ms']['p50']:>12.1f}{r['next_trial_ms']['p50']:>10.1f}"
              f"{r['start_rater_ms']['p95']:>11.1f}{r['answers_per_s']:>8.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    ok = all(r["answers"] == r["stored"] for r in results)
    if not ok:
        print("ERROR: stored ratings differ from answers given")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
