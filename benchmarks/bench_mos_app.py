"""Benchmark of the rater app: time from "Submit" to the next image rendered, with N concurrent raters.

    python -m benchmarks.bench_mos_app [--raters 1 20] [--trials 10] [--think 1.0] [--crop 256] [--json out.json]

One ``streamlit run mos_app/app.py`` server (SQLite database in a temporary folder) and one headless
Chromium (Debian's /usr/bin/chromium driven by Playwright) with one browser context per rater, all
rating at the same time (asyncio). The latency is measured inside each page with ``performance.now()``:
from the click on Submit until the next trial's image(s) are in the DOM, decoded and painted (next
animation frame): the whole round trip (websocket message, rerun, database write and read, PNG
re-encode + base64, rendering). Raters wait ``--think`` seconds (uniform 0.5x..1.5x) between answers;
``--think 0`` is a stress test. The study: skimage photos centre-cropped to ``--crop`` px (stimuli of
that size), nearest/bicubic/hr, ACR + pair trials.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SUBMIT_AND_WAIT_JS = """
async (prev) => {
  const t0 = performance.now();
  const form = [...document.querySelectorAll("[data-testid='stForm']")]
    .find(f => f.querySelector('.st-key-answer_' + prev));
  form.querySelector("[data-testid='stFormSubmitButton'] button").click();
  const found = () => {
    const m = document.querySelector("[data-mos^='trial-']");
    const f = document.querySelector("[data-testid='stForm']");
    if (m && f && m.getAttribute('data-mos') !== 'trial-' + prev) return {m};
    const h = [...document.querySelectorAll('h1')].map(e => e.innerText).join('|');
    if (h.includes('Thank you!') || h.includes('Time for a short break')) return {other: true};
    return null;
  };
  const hit = await new Promise(resolve => {
    const done = r => { obs.disconnect(); clearInterval(poll); resolve(r); };
    const check = () => { const r = found(); if (r) done(r); };
    const obs = new MutationObserver(check);
    obs.observe(document.body, {subtree: true, childList: true, attributes: true});
    const poll = setInterval(check, 20);
    check();
  });
  if (hit.other) return {kind: 'other', ms: performance.now() - t0};
  const imgs = [...hit.m.querySelectorAll('img')];
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  await new Promise(r => requestAnimationFrame(() => r()));
  return {kind: 'trial', trial: hit.m.getAttribute('data-mos'), ms: performance.now() - t0,
          server_ms: parseFloat(hit.m.getAttribute('data-srv-ms') || 'NaN'),
          imgs: imgs.length, bytes: imgs.reduce((a, i) => a + i.src.length, 0)};
}
"""


def build_study(tmp: Path, crop: int) -> tuple[str, str]:
    from jobs.mos_study import StudySpec, make_study
    from srkeras.data import save_image
    from srkeras.data.samples import SAMPLE_NAMES, sample_image

    hr_dir = tmp / "hr"
    hr_dir.mkdir()
    for name in SAMPLE_NAMES[:7]:
        save_image(hr_dir / f"{name}.png", sample_image(name))
    url = f"sqlite:///{tmp / 'mos.db'}"
    make_study(StudySpec(name="bench", hr_dir=hr_dir, db_url=url, stimuli_dir=tmp / "stimuli", scale=4, crop=crop,
                         methods=("nearest", "bicubic", "hr"), mode="both", votes_per_stimulus=100, calibration_images=1,
                         repeats=0, break_every=0, seed=0, progress=False), log=lambda m: None)
    return url, "bench"


async def rater(browser, base: str, trials: int, think: float, seed: int, out: list, errors: list) -> None:
    rng = random.Random(seed)
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    page = await ctx.new_page()
    try:
        await page.goto(base, timeout=120_000)
        await page.get_by_text("I have read the above and agree").click(timeout=120_000)
        await page.get_by_role("button", name="Start").click(timeout=120_000)
        await page.get_by_role("button", name="I understand").click(timeout=120_000)
        await page.locator("[data-mos^='trial-'] img").first.wait_for(timeout=120_000)
        for _ in range(trials):
            prev = int((await page.locator("[data-mos^='trial-']").get_attribute("data-mos")).split("-")[1])
            pair = await page.locator("[data-mos^='trial-'] img").count() == 2
            label = rng.choice(["A (left)", "B (right)", "No preference"] if pair else
                               ["1 – Bad", "2 – Poor", "3 – Fair", "4 – Good", "5 – Excellent"])
            if think:
                await asyncio.sleep(think * rng.uniform(0.5, 1.5))
            # Scope to this trial's widgets: Streamlit keeps the previous page's elements until replaced.
            radio = page.locator(f".st-key-answer_{prev}")
            await radio.get_by_text(label, exact=True).click(timeout=60_000)
            await radio.get_by_role("radio", name=label, exact=True).wait_for(state="attached")
            await page.wait_for_function(
                "([k, l]) => [...document.querySelectorAll('.st-key-' + k + ' input[type=radio]')]"
                ".some(i => i.checked)", arg=[f"answer_{prev}", label], timeout=60_000)
            r = await asyncio.wait_for(page.evaluate(SUBMIT_AND_WAIT_JS, prev), timeout=90)
            if r["kind"] != "trial":
                break
            out.append(r)
            print(".", end="", flush=True)
    except Exception as e:  # noqa: BLE001 - a failing rater is reported, the others go on
        errors.append(f"rater {seed}: {type(e).__name__}: {str(e)[:200]}")
    finally:
        await ctx.close()


async def run_round(base: str, raters: int, trials: int, think: float) -> tuple[list, list, float]:
    from playwright.async_api import async_playwright

    from tests._browser import CHROME_ARGS, CHROMIUM

    out, errors = [], []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        t0 = time.perf_counter()
        await asyncio.gather(*(rater(browser, base, trials, think, i, out, errors) for i in range(raters)))
        wall = time.perf_counter() - t0
        await browser.close()
    return out, errors, wall


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q / 100 * (len(v) - 1))))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raters", type=int, nargs="+", default=[1, 20], help="concurrent raters per round")
    ap.add_argument("--trials", type=int, default=10, help="submissions timed per rater")
    ap.add_argument("--think", type=float, default=1.0, help="mean seconds between answers (0 = stress)")
    ap.add_argument("--crop", type=int, default=256, help="stimulus size in px (HR centre crop)")
    ap.add_argument("--json", type=Path, help="write the results here")
    a = ap.parse_args(argv)

    if not Path("/usr/bin/chromium").exists():
        print("needs Debian's chromium (/usr/bin/chromium) and playwright: apt-get install chromium", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    # The browser tests' helpers: start/stop `streamlit run` by PID, launch Chromium with the CI flags.
    from tests._browser import free_port, stop
    from tests.test_mos_browser import start_streamlit

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_mos_app_") as d:
        tmp = Path(d)
        t = time.perf_counter()
        url, study = build_study(tmp, a.crop)
        print(f"study built in {time.perf_counter() - t:.1f} s ({a.crop}x{a.crop} px stimuli)", flush=True)
        port = free_port()
        proc = start_streamlit(url, study, port, tmp / "streamlit.log")
        try:
            base = f"http://127.0.0.1:{port}/"
            for n in a.raters:
                res, errors, wall = asyncio.run(run_round(base, n, a.trials, a.think))
                ms = [r["ms"] for r in res]
                for e in errors:
                    print("  error:", e, flush=True)
                if not ms:
                    print(f"{n} raters: no measurement", flush=True)
                    continue
                srv = [r["server_ms"] for r in res if r.get("server_ms") == r.get("server_ms")]  # not NaN
                rows.append(dict(raters=n, samples=len(ms), p50_ms=pct(ms, 50), p95_ms=pct(ms, 95), max_ms=max(ms),
                                 server_p50_ms=pct(srv, 50) if srv else None,
                                 server_p95_ms=pct(srv, 95) if srv else None,
                                 mean_ms=statistics.fmean(ms), think_s=a.think, crop=a.crop, wall_s=wall,
                                 submits_per_s=len(ms) / wall, errors=len(errors),
                                 kb_per_trial=statistics.fmean(r["bytes"] for r in res) / 1024))
                print(f"{n} raters done: {len(ms)} samples in {wall:.1f} s", flush=True)
        finally:
            stop(proc)

    print()
    print("submit -> next image rendered (in-browser performance.now), one streamlit server, SQLite")
    print("(server = from the submit callback's start to the next page's image HTML, inside streamlit)")
    print(f"{'raters':>6} {'samples':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'srv p50':>8} {'srv p95':>8} "
          f"{'submit/s':>8} {'KB/trial':>8} {'errors':>6}")
    for r in rows:
        print(f"{r['raters']:>6} {r['samples']:>7} {r['p50_ms']:>8.0f} {r['p95_ms']:>8.0f} {r['max_ms']:>8.0f} "
              f"{r['server_p50_ms'] or float('nan'):>8.1f} {r['server_p95_ms'] or float('nan'):>8.1f} "
              f"{r['submits_per_s']:>8.2f} {r['kb_per_trial']:>8.0f} {r['errors']:>6}")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
