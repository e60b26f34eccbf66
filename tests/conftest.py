"""Shared pytest fixtures for the MOS database, study builder and rater app tests.

* ``db_url``: a fresh, empty database URL, parametrized over ``sqlite`` (a file in ``tmp_path``) and
  ``postgresql`` (a unique schema in the server named by ``SRKERAS_TEST_PG_URL``, dropped afterwards;
  skipped when the variable is unset). Nothing is created in it yet.
* ``sqlite_url``: the SQLite case only (e.g. for a ``streamlit run`` subprocess).
* ``db``: ``open_database(db_url)`` (migrated), closed after the test.
* ``make_study``: factory ``make_study(db_url=None, **options) -> TinyStudy`` building a small study
  from generated images with ``jobs.mos_study.make_study`` (defaults: 4 test + 1 calibration
  images of 48x48 px, x4, nearest/bicubic/hr, ACR, 3 votes per stimulus, 2 repeats).
* ``tiny_study``: ``make_study()`` on ``db_url``.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path

import numpy as np
import pytest

PG_ENV = "SRKERAS_TEST_PG_URL"


def _pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def _pg_exec(base: str, sql: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=__import__("sqlalchemy.pool").pool.NullPool)
    try:
        with eng.connect() as c:
            c.execute(text("SET lock_timeout = '20s'"))
            c.execute(text(sql))
    finally:
        eng.dispose()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request, tmp_path):
    """A fresh empty database: SQLite file, or a unique PostgreSQL schema (skipped without the env var)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mos.db'}"
        return
    base = _pg_admin_url()
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+psycopg://user:pw@127.0.0.1:5432/db)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        _pg_exec(base, f'CREATE SCHEMA "{schema}"')
    except Exception as e:  # server down: a clear skip, not an error in every test
        pytest.skip(f"cannot reach PostgreSQL at {PG_ENV}: {e}")
    try:
        yield _pg_schema_url(base, schema)
    finally:
        _pg_exec(base, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'mos.db'}"


@pytest.fixture
def db(db_url):
    from db import open_database

    d = open_database(db_url)
    yield d
    d.close()


def synthetic_image(seed: int, size: int = 48) -> np.ndarray:
    """A float32 (size, size, 3) image with smooth shading, sharp edges and texture (so NN != bicubic)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (x * rng.uniform(1, 3) + c)) * y for c in (0, 0.3, 0.6)], -1)
    for _ in range(4):  # hard-edged rectangles
        r0, c0 = rng.integers(0, size - 8, 2)
        h, w = rng.integers(4, size // 2, 2)
        img[r0 : r0 + h, c0 : c0 + w] = rng.uniform(0, 1, 3)
    img += rng.normal(0, 0.03, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def write_images(folder: Path, n: int, size: int = 48, seed: int = 0) -> Path:
    from srkeras.data import save_image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        save_image(folder / f"img{i:02d}.png", synthetic_image(seed + i, size), overwrite=True)
    return folder


@dataclasses.dataclass
class TinyStudy:
    name: str
    url: str
    hr_dir: Path
    stimuli_dir: Path
    info: object  # db.StudyInfo
    summary: dict

    def open(self):
        from db import open_database

        return open_database(self.url)


@pytest.fixture
def make_study(request, tmp_path):
    """Factory: ``make_study(db_url=None, name="tiny", n_images=5, size=48, **StudySpec fields)``.

    ``db_url`` defaults to this test's ``db_url`` fixture value (or a SQLite file if the test does not
    use it). ``n_images`` includes the calibration image(s).
    """
    counter = [0]

    def factory(db_url: str | None = None, name: str = "tiny", n_images: int = 5, size: int = 48, **options):
        from jobs.mos_study import StudySpec
        from jobs.mos_study import make_study as make

        if db_url is None:
            db_url = (
                request.getfixturevalue("db_url")
                if "db_url" in request.fixturenames
                else f"sqlite:///{tmp_path / 'mos.db'}"
            )
        counter[0] += 1
        hr_dir = write_images(tmp_path / f"hr_{counter[0]}", n_images, size, seed=options.pop("image_seed", 0))
        stim_dir = Path(options.pop("stimuli_dir", tmp_path / "stimuli"))
        opts = dict(
            scale=4,
            methods=("nearest", "bicubic", "hr"),
            mode="acr",
            votes_per_stimulus=3,
            calibration_images=1,
            repeats=2,
            break_every=0,
            seed=0,
            progress=False,
        )
        opts.update(options)
        spec = StudySpec(name=name, hr_dir=hr_dir, db_url=db_url, stimuli_dir=stim_dir, **opts)
        info, summary = make(spec, log=lambda msg: None)
        return TinyStudy(name, db_url, hr_dir, stim_dir, info, summary)

    return factory


@pytest.fixture
def tiny_study(make_study, db_url):
    return make_study(db_url)


@pytest.fixture
def app(monkeypatch):
    """Factory: an AppTest of the rater app (``mos_app/app.py``) on database ``url`` with optional
    query params, already run once."""
    from streamlit.testing.v1 import AppTest

    rater_app = str(Path(__file__).resolve().parents[1] / "mos_app" / "app.py")

    def factory(url: str, **query):
        monkeypatch.setenv("MOS_DB_URL", url)
        monkeypatch.delenv("MOS_STUDY", raising=False)
        at = AppTest.from_file(rater_app, default_timeout=60)
        at.query_params.update(query)
        return at.run()

    return factory


# In CI (`CI=true`, set by the CI runner) a test marked ``registry`` must really run: its skip (the
# registry could not be reached) is turned into a failure, so a green CI always means the pinned
# downloads were fetched and checked. Locally and offline they skip with the client's message.
REQUIRED_IN_CI = ("registry",)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    required = [m for m in REQUIRED_IN_CI if item.get_closest_marker(m)]
    if required:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"marked {required[0]!r}, which must run in CI, but was skipped: {reason}"
