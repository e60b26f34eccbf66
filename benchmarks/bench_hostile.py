"""Peak memory and time reading hostile files (issue 24, items 2 and 5): what one upload costs.

    python -m benchmarks.bench_hostile [--scale full|small] [--limit-gb 4] [--json OUT]

Each file is built in a temporary folder with the standard library (tests/_hostile.py: pickle
opcodes and zip records by hand, zlib bombs from one compressed block repeated), then read by a
fresh child (``python -m tests._hostile LIMIT COMMAND case=path``) under a middle process that
prints ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``: the child's own peak RSS, one process per
file. Children get ``--limit-gb`` of address space (a reader that misbehaves fails with
MemoryError there instead of taking the machine; the ``import`` case, which loads TensorFlow, runs
without). ``baseline`` reads nothing: the interpreter plus the reader's imports.

Full scale (the issue's files):

* ``pth_billion_laughs``: 9 levels of 10 shared list references (10**9 leaves, 333 bytes);
* ``pth_hash_laughs``: 60 levels of shared tuple pairs used as a dict key (2**60 hashes);
* ``pth_deflate_bomb``: a 4 MB zip whose storage member inflates to 4095 MiB (data.pkl: 216 floats);
* ``pth_200k_blocks``: the tiny RRDBNet fixture plus one key ``body.200000.rdb1.conv1.weight``;
* ``png16_idat_bomb`` / ``png16_iccp_bomb``: 16-bit 8x8 RGB PNGs whose IDAT / iCCP inflate to 2 GiB;
* ``png8_idat_bomb`` / ``png8_iccp_bomb``: the same at 8 bits (Pillow's decoder, srkeras.data.io).

``--scale small`` shrinks each (10**6 leaves, 2**24 hashes, 256 MiB members, body.100) so that a
checkout *without* the fixes can be measured safely: run this module from a copy whose
``srkeras`` is the old one (the children import the caller's PYTHONPATH first), e.g.
``git archive <old> srkeras | tar -x -C /tmp/old && cp -r tests benchmarks pyproject.toml /tmp/old``,
then ``cd /tmp/old && PYTHONPATH=/tmp/old python -m benchmarks.bench_hostile --scale small``.
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

import numpy as np

from tests import _hostile as H

MiB = 1 << 20
FIX = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pretrained" / "torch"
SCALES = {
    "full": {"laughs": 9, "hash": 60, "member": 4095 * MiB, "block": 200_000, "png": 2048 * MiB},
    "small": {"laughs": 6, "hash": 24, "member": 256 * MiB, "block": 100, "png": 256 * MiB},
}
_MEASURE = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "print(json.dumps({'rc': r.returncode, 'out': r.stdout, 'err': r.stderr[-400:], 'seconds': time.perf_counter() - t,\n"
    "                  'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n"
)


def _stray_block_file(folder: Path, block: int) -> Path:
    from srkeras.pretrained.torchfile import load_pth

    sd = load_pth(FIX / "rrdbnet_x4_zip.pth")["params_ema"]
    sd[f"body.{block}.rdb1.conv1.weight"] = sd["body.0.rdb1.conv1.weight"]
    return H.write_zip(folder / "blocks.pth", *H.state_dict_parts(sd))


def build_files(folder: Path, scale: str) -> list[tuple[str, str, Path]]:
    """``(case, reader command, path)`` of every hostile file at ``scale``."""
    s = SCALES[scale]
    png = {}
    for depth in (16, 8):
        for where in ("idat", "iccp"):
            png[f"png{depth}_{where}_bomb"] = folder / f"{where}{depth}.png"
            png[f"png{depth}_{where}_bomb"].write_bytes(H.png_bomb(where, s["png"], depth=depth))
    return [
        ("baseline", "load", H.write_zip(folder / "honest.pth", *H.state_dict_parts({"w": np.ones(4, "f4")}))),
        ("pth_billion_laughs", "load", H.write_zip(folder / "laughs.pth", H.laughs_pickle(s["laughs"], 10), {})),
        ("pth_hash_laughs", "load", H.write_zip(folder / "hash.pth", H.hash_laughs_pickle(s["hash"]), {})),
        ("pth_deflate_bomb", "load", H.write_deflate_bomb(folder / "bomb.pth", s["member"], 216)),
        (f"pth_{s['block']}_blocks", "import", _stray_block_file(folder, s["block"])),
        *[(case, "png", path) for case, path in png.items()],
    ]


def measure(case: str, command: str, path: Path, limit: int, timeout: float) -> dict:
    """Outcome, peak RSS (MB) and seconds of one fresh child reading ``path``."""
    child = [sys.executable, "-m", "tests._hostile", str(0 if command == "import" else limit), command, f"{case}={path}"]
    root = Path(__file__).resolve().parents[1]
    paths = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(root)) if p)
    env = {**os.environ, "PYTHONPATH": paths, "OPENBLAS_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        r = subprocess.run([sys.executable, "-c", _MEASURE, *child], capture_output=True, text=True,
                           env=env, cwd=root, timeout=timeout)
        m = json.loads(r.stdout)
    except subprocess.TimeoutExpired:
        return {"case": case, "outcome": f"timeout ({timeout:.0f} s)", "peak_mb": None, "seconds": timeout}
    line = json.loads(m["out"].splitlines()[-1]) if m["out"].strip() else {"outcome": f"crash (exit {m['rc']})"}
    detail = line.get("detail", "shared references built once" if line.get("shared") else "")
    return {"case": case, "file_bytes": path.stat().st_size, "outcome": line["outcome"],
            "detail": detail.split(": ", 1)[-1][:110], "peak_mb": round(m["peak_mb"]), "seconds": round(m["seconds"], 2)}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_hostile")
    p.add_argument("--scale", choices=sorted(SCALES), default="full")
    p.add_argument("--limit-gb", type=float, default=4.0, help="address-space limit of each child")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per file")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SRKERAS_MODEL_DIR"] = str(Path(tmp) / "models")  # the import case installs nothing
        t = time.perf_counter()
        files = build_files(Path(tmp), args.scale)
        print(f"built {len(files)} files in {time.perf_counter() - t:.1f} s ({args.scale} scale)")
        print(f"{'case':22} {'file':>10} {'peak RSS':>9} {'seconds':>8}  outcome")
        for case, command, path in files:
            row = measure(case, command, path, int(args.limit_gb * (1 << 30)), args.timeout)
            rows.append(row)
            peak = "-" if row["peak_mb"] is None else f"{row['peak_mb']} MB"
            print(f"{case:22} {row.get('file_bytes', 0):>10,} {peak:>9} {row['seconds']:>8}  {row['outcome']}: {row.get('detail', '')}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
