"""Soak of the rater app: N careless raters through the real server for a while; nothing lost, nothing doubled.

    python -m benchmarks.bench_mos_soak [--raters 20] [--minutes 10] [--db URL | --pg] [--json out.json]

One ``streamlit run mos_app/app.py`` (started with ``subprocess.Popen``, stopped by its PID) on a fresh
SQLite file, or on PostgreSQL (``--db postgresql+psycopg://...`` or ``--pg`` with
``SRKERAS_TEST_PG_URL``; a throw-away schema, dropped afterwards). One headless Chromium (Debian's
/usr/bin/chromium via Playwright, loopback only) with one browser context per rater, all at once. Each
rater loops until the time is up: consent, calibration, answers; at random it reloads the page
(sometimes with an answer chosen but not sent), presses Back (or leaves and opens the study link again),
or double-clicks Submit; a finished rater starts again as a new person in the same browser.

An answer is *acknowledged* when the page moves on from its trial (next trial, break or thank-you).
At the end the database must hold exactly the acknowledged answers (same trials, no extras, one rating
per trial), and every rater in it must come from a Start click (Back and reloads never start one).
The server's resident memory is sampled every few seconds: it should stay flat.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parents[1]
PG_ENV = "SRKERAS_TEST_PG_URL"

#: The page's state once Streamlit has finished re-rendering (no stale elements left), else null.
STATE_JS = """
() => {
  if (document.querySelector('[data-stale="true"]')) return null;
  const h = [...document.querySelectorAll('h1')].map(e => e.innerText).join('|');
  const err = [...document.querySelectorAll("[data-testid='stAlertContentError']")].map(e => e.innerText);
  const m = document.querySelector("[data-mos^='trial-']");
  if (m && document.querySelector("[data-testid='stForm'] [data-testid='stFormSubmitButton']")) {
    const imgs = [...m.querySelectorAll('img')];
    if (imgs.length && imgs.every(i => i.complete && i.naturalWidth > 0))
      return {kind: 'trial', tid: parseInt(m.getAttribute('data-mos').split('-')[1]), pair: imgs.length == 2,
              errors: err};
    return null;
  }
  if (h.includes('Thank you!')) return {kind: 'thanks', errors: err};
  if (h.includes('Time for a short break')) return {kind: 'break', errors: err};
  if (h.includes('Calibration') && document.querySelector('.st-key-calibrated_btn')) return {kind: 'calibration'};
  if (document.querySelector('.st-key-consent')) return {kind: 'consent', errors: err};
  if (err.length) return {kind: 'error', errors: err};
  return null;
}
"""
ACR = ["1 – Bad", "2 – Poor", "3 – Fair", "4 – Good", "5 – Excellent"]
PAIR = ["A (left)", "B (right)", "No preference"]


@dataclasses.dataclass
class Tally:
    """What the raters did and saw (shared by all rater tasks; asyncio runs them on one thread)."""

    acked: dict = dataclasses.field(default_factory=dict)  # trial id -> browser context number
    starts: int = 0
    tokens: dict = dataclasses.field(default_factory=dict)  # context -> set of tokens seen in its URL
    answers: int = 0
    double_submits: int = 0
    reloads: int = 0
    backs: int = 0
    revisits: int = 0
    completed: int = 0
    timeouts: int = 0
    page_errors: list = dataclasses.field(default_factory=list)


async def settled(page, timeout_s: float = 60, differs=None):
    """Wait (by condition) until the page shows a recognisable, fully rendered state, optionally one for
    which ``differs(state)`` is true; returns the state."""
    deadline = time.monotonic() + timeout_s
    while True:
        st = await page.evaluate(STATE_JS)
        if st is not None and (differs is None or differs(st)):
            return st
        if time.monotonic() > deadline:
            raise TimeoutError(f"page did not settle (last state {st}, url {page.url})")
        await asyncio.sleep(0.05)


def _token(url: str) -> str | None:
    return (parse_qs(urlparse(url).query).get("r") or [None])[0]


async def answer(page, st, rng: random.Random, tally: Tally, me: int) -> None:
    """Choose an answer for trial ``st`` and submit it (sometimes with a double click); count the
    acknowledgement when the page moves on."""
    tid = st["tid"]
    label = rng.choice(PAIR if st["pair"] else ACR)
    radio = page.locator(f".st-key-answer_{tid}")
    await radio.get_by_text(label, exact=True).click(timeout=30_000)
    await page.wait_for_function(
        "k => [...document.querySelectorAll('.st-key-' + k + ' input[type=radio]')].some(i => i.checked)",
        arg=f"answer_{tid}", timeout=30_000)
    form = page.locator("[data-testid='stForm']", has=radio)
    submit = form.get_by_role("button", name="Submit")
    if rng.random() < 0.15:
        await submit.dblclick(timeout=30_000)
        tally.double_submits += 1
    else:
        await submit.click(timeout=30_000)
    tally.answers += 1
    nxt = await settled(page, differs=lambda s: s["kind"] != "trial" or s["tid"] != tid or s.get("errors"))
    if nxt["kind"] == "trial" and nxt["tid"] == tid:  # an error message on the same trial: not stored
        tally.page_errors += nxt["errors"]
        return
    tally.acked[tid] = me


async def mischief(page, base: str, st, rng: random.Random, tally: Tally) -> None:
    """A reload (sometimes with an answer chosen but not sent), or Back / leaving and coming back."""
    if rng.random() < 0.5:
        if rng.random() < 0.5:
            label = rng.choice(PAIR if st["pair"] else ACR)
            await page.locator(f".st-key-answer_{st['tid']}").get_by_text(label, exact=True).click(timeout=30_000)
        await page.reload()
        tally.reloads += 1
        return
    await page.go_back()
    tally.backs += 1
    if not page.url.startswith(base):  # left the study: open the bare study link again
        await page.goto(base)
        tally.revisits += 1
    await page.wait_for_url(lambda u: _token(u) is not None, timeout=60_000)


async def rater(browser, base: str, deadline: float, me: int, tally: Tally) -> None:
    rng = random.Random(me)
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await ctx.new_page()
    tokens = tally.tokens.setdefault(me, set())
    try:
        await page.goto(base, timeout=120_000)
        while time.monotonic() < deadline:
            try:
                st = await settled(page)
            except TimeoutError:
                tally.timeouts += 1
                await page.reload()
                continue
            if (tok := _token(page.url)) is not None:
                tokens.add(tok)
            if st.get("errors"):
                tally.page_errors += st["errors"]
            kind = st["kind"]
            if kind == "consent":
                await page.locator(".st-key-consent").get_by_text("I have read the above").click()
                await page.get_by_role("button", name="Start").click()
                tally.starts += 1
                await page.wait_for_url(lambda u: _token(u) is not None, timeout=60_000)
            elif kind == "calibration":
                await page.get_by_role("button", name="I understand").click()
                await settled(page, differs=lambda s: s["kind"] != "calibration")
            elif kind == "break":
                await page.get_by_role("button", name="Continue").click()
                await settled(page, differs=lambda s: s["kind"] != "break")
            elif kind == "thanks":
                tally.completed += 1
                await page.goto(base)  # the next volunteer at this computer
            elif kind == "error":
                await asyncio.sleep(1)
                await page.reload()
            elif rng.random() < 0.12:
                await mischief(page, base, st, rng, tally)
            else:
                await asyncio.sleep(rng.uniform(0.2, 1.5))  # looking at the image
                await answer(page, st, rng, tally, me)
    except Exception as e:  # noqa: BLE001 - a failing rater is reported, the others go on
        tally.page_errors.append(f"rater {me}: {type(e).__name__}: {str(e)[:300]}")
    finally:
        await ctx.close()


async def run_raters(base: str, n: int, seconds: float) -> Tally:
    from playwright.async_api import async_playwright

    from tests._browser import CHROME_ARGS, CHROMIUM

    tally = Tally()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(rater(browser, base, deadline, i, tally) for i in range(n)))
        await browser.close()
    return tally


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """Samples a process's resident memory every ``every`` seconds: [(seconds since start, MB)]."""

    def __init__(self, pid: int, every: float):
        super().__init__(daemon=True)
        self.pid, self.every, self.samples, self._halt = pid, every, [], threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self._halt.is_set():
            mb = rss_mb(self.pid)
            if mb is not None:
                self.samples.append((round(time.monotonic() - t0, 1), round(mb, 1)))
            self._halt.wait(self.every)

    def stop(self) -> list:
        self._halt.set()
        self.join(5)
        return self.samples


def build_study(tmp: Path, url: str, trials: int) -> str:
    from jobs.mos_study import StudySpec, make_study
    from tests.conftest import write_images

    hr = write_images(tmp / "hr", 7, size=48)
    make_study(StudySpec(name="soak", hr_dir=hr, db_url=url, stimuli_dir=tmp / "stimuli", scale=4,
                         methods=("nearest", "bicubic", "hr"), mode="both", votes_per_stimulus=10_000, calibration_images=1,
                         trials_per_rater=trials, repeats=1, break_every=5, seed=0, progress=False), log=lambda m: None)
    return "soak"


def check(url: str, tally: Tally) -> dict:
    """Compare the database with what the raters saw acknowledged."""
    from db import open_database, rating_ledger

    db = open_database(url, migrate=False)
    try:
        ledger = rating_ledger(db)
    finally:
        db.close()
    rows, n_raters, n_unique, owners = (ledger["ratings"], ledger["raters"], ledger["distinct_rated_trials"],
                                        ledger["trial_owner"])
    stored = {t for t, _ in rows}
    acked = set(tally.acked)
    wrong_owner = [t for t, c in tally.acked.items() if owners.get(t) not in tally.tokens.get(c, set())]
    return dict(
        ratings_stored=len(rows), answers_acknowledged=len(acked), stored_equals_acknowledged=stored == acked,
        stored_not_acknowledged=sorted(stored - acked)[:20], acknowledged_not_stored=sorted(acked - stored)[:20],
        duplicate_ratings=len(rows) - n_unique, raters_in_db=n_raters, start_clicks=tally.starts,
        acked_for_another_browsers_rater=len(wrong_owner),
        tokens_per_browser=max((len(v) for v in tally.tokens.values()), default=0),
    )


def _pg_schema(base: str) -> tuple[str, str]:
    from sqlalchemy import create_engine, text

    schema = f"soak_{uuid.uuid4().hex[:10]}"
    eng = create_engine(base, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", schema


def _pg_drop(base: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(base, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    eng.dispose()


def soak(url: str, tmp: Path, a) -> dict:
    from tests._browser import free_port, start_app, stop

    study = build_study(tmp, url, a.trials)
    port = free_port()
    proc = start_app(ROOT / "mos_app" / "app.py", {"MOS_DB_URL": url, "MOS_STUDY": study}, port, tmp / "server.log")
    sampler = RssSampler(proc.pid, a.rss_every)
    sampler.start()
    t0 = time.monotonic()
    try:
        tally = asyncio.run(run_raters(f"http://127.0.0.1:{port}/", a.raters, a.minutes * 60))
    finally:
        samples = sampler.stop()
        stop(proc)
    wall = time.monotonic() - t0
    result = check(url, tally)
    mbs = [mb for _, mb in samples]
    half = mbs[len(mbs) // 2:] or mbs
    result.update(
        backend=url.split(":", 1)[0], raters=a.raters, seconds=round(wall, 1), answers_sent=tally.answers,
        double_submits=tally.double_submits, reloads=tally.reloads, backs=tally.backs, revisits=tally.revisits,
        completed=tally.completed, settle_timeouts=tally.timeouts, page_errors=tally.page_errors[:20],
        rss_mb_first=mbs[0] if mbs else None, rss_mb_max=max(mbs) if mbs else None,
        rss_mb_last=mbs[-1] if mbs else None, rss_mb_second_half_range=(round(max(half) - min(half), 1) if half else None),
        rss_samples=samples,
    )
    result["ok"] = bool(result["stored_equals_acknowledged"] and not result["duplicate_ratings"]
                        and result["raters_in_db"] == result["start_clicks"]
                        and not result["acked_for_another_browsers_rater"])
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raters", type=int, default=20, help="raters at once (browser contexts)")
    ap.add_argument("--minutes", type=float, default=10.0, help="how long the raters keep going")
    ap.add_argument("--trials", type=int, default=12, help="trials per rater (then a new rater starts)")
    ap.add_argument("--db", help="SQLAlchemy URL of a PostgreSQL server (a temporary schema is used)")
    ap.add_argument("--pg", action="store_true", help=f"also soak on PostgreSQL at ${PG_ENV}")
    ap.add_argument("--rss-every", type=float, default=5.0, help="seconds between server memory samples")
    ap.add_argument("--json", type=Path, help="write the results here")
    a = ap.parse_args(argv)
    if not Path("/usr/bin/chromium").exists():
        print("needs Debian's chromium (/usr/bin/chromium) and playwright", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    pg = a.db or (os.environ.get(PG_ENV) if a.pg else None)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_mos_soak_") as d:
        tmp = Path(d)
        (tmp / "sqlite").mkdir()
        results.append(soak(f"sqlite:///{tmp / 'sqlite' / 'mos.db'}", tmp / "sqlite", a))
        if pg:
            (tmp / "pg").mkdir()
            url, schema = _pg_schema(pg)
            try:
                results.append(soak(url, tmp / "pg", a))
            finally:
                _pg_drop(pg, schema)
    for r in results:
        brief = {k: v for k, v in r.items() if k != "rss_samples"}
        print(json.dumps(brief, indent=1))
        print("RSS MB over time:", " ".join(f"{t:.0f}s:{mb:.0f}" for t, mb in r["rss_samples"]))
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
