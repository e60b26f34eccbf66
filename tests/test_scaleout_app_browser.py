"""Two rater-app servers on one PostgreSQL database, driven by real browsers (issue 15).

Two ``streamlit run mos_app/app.py`` processes on different ports (as behind a load balancer) and two
``streamlit run mos_app/admin.py`` processes share one PostgreSQL schema. Simulated raters (one browser
context each, in one headless Chromium, a few at a time) consent on one server and then switch server
after every answer: they open their own ``?r=TOKEN`` link on the other port, which must show exactly
the trial the first server showed next (resume at the right trial). One rater also answers the same
trial from two tabs on the two servers. A last rater reaches the app through a TCP proxy (a load
balancer, :class:`tests._browser.SwitchableProxy`); after their first answer their server is stopped and
the proxy points to the other one: the page reconnects by itself, shows the next trial, and the first
click there is stored (before the fix in ``mos_app.app.trial_page`` Streamlit dropped it, as a new
session on that server had no callbacks registered yet). Afterwards every answer is stored exactly once, no trial is lost,
votes per stimulus differ by at most 1 (what the assignment guarantees with one server when every rater
finishes, see :mod:`db.assignment`), and both admin servers show the same status as the database.

The default variant runs 6 raters; the 20-rater run of the acceptance criterion is marked ``slow``.
"""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select

from tests._browser import (
    CHROME_ARGS,
    CHROMIUM,
    ROOT,
    SwitchableProxy,
    free_port,
    require_browser,
    start_apps,
    stop,
    stop_all,
)

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

require_browser()
async_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")

APP, ADMIN = ROOT / "mos_app" / "app.py", ROOT / "mos_app" / "admin.py"
PASSWORD = "scale-out"
TRIALS, REPEATS = 4, 1  # per rater: 3 votes + 1 test-retest repeat; 4 sources x 3 methods = 12 items
DWELL_MS = 1600  # each answer a little slower than screening's "too fast" (srkeras.mos.screening.FAST_MS)
WAIT_MS = 45_000
LABELS = {1: "1 – Bad", 2: "2 – Poor", 3: "3 – Fair", 4: "4 – Good", 5: "5 – Excellent"}

NEXT_JS = """(prev) => {
    const m = document.querySelector("[data-mos^='trial-']");
    const form = document.querySelector("[data-testid='stForm']");
    if (m && form && m.getAttribute('data-mos') !== 'trial-' + prev) {
        const imgs = [...m.querySelectorAll('img')];
        if (imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)) return true;
    }
    return [...document.querySelectorAll('h1')].some(h => h.innerText.includes('Thank you!'));
}"""


async def next_trial(page, previous: int | None) -> int | None:
    """Wait until a trial other than ``previous`` (drawn, images decoded) or the thank-you page is on
    screen; its trial id, or None for the thank-you page."""
    await page.wait_for_function(NEXT_JS, arg=previous, timeout=WAIT_MS)
    el = await page.query_selector("[data-mos^='trial-']")
    if el is not None:
        tid = int((await el.get_attribute("data-mos")).split("-")[1])
        if tid != previous:
            return tid
    return None


async def answer(page, tid: int, value: int) -> None:
    form = page.locator("[data-testid='stForm']", has=page.locator(f".st-key-answer_{tid}"))
    await form.get_by_role("radiogroup").get_by_text(LABELS[value], exact=True).click()
    await async_api.expect(form.get_by_role("radio", name=LABELS[value], exact=True)).to_be_checked()
    await page.wait_for_timeout(DWELL_MS)  # not "too fast" (timed in the browser from the images' load)
    await form.get_by_role("button", name="Submit").click()


def honest_scores(db_url: str, token: str) -> dict[int, int]:
    """{trial: score} that passes screening (admin knowledge: the anchors as expected, one score per
    stimulus so that repeats agree). A screened-out rater's votes count toward no target and are
    topped up (issue 20), which would unbalance the votes per stimulus this test counts."""
    from db import open_database
    from db.models import Rater, Trial

    db = open_database(db_url)
    try:
        with db.session() as s:
            rater = s.scalars(select(Rater).where(Rater.token == token)).one()
            trials = s.scalars(select(Trial).where(Trial.rater_id == rater.id)).all()
            anchors = {"low_anchor": 1, "high_anchor": 5}
            return {t.id: anchors.get(getattr(t.stimulus.method.role, "value", t.stimulus.method.role), 2 + t.stimulus.id % 3) for t in trials}
    finally:
        db.close()


async def progress(page) -> str:
    """The "Image n of N" line, once drawn (it can come after the trial's images on a loaded machine)."""
    await page.wait_for_function("() => /Image \\d+ of \\d+/.test(document.body.innerText)", timeout=WAIT_MS)
    text = await page.inner_text("body")
    m = re.search(r"Image (\d+) of (\d+)", text)
    return m.group(0) if m else ""


async def one_rater(browser, bases: list[str], study: str, k: int, log: dict, db_url: str) -> None:
    """Rater ``k``: consent on server ``k % 2``, then switch server after every answer."""
    ctx = await browser.new_context(viewport={"width": 1100, "height": 800})
    try:
        page = await ctx.new_page()
        srv = k % 2
        await page.goto(f"{bases[srv]}?study={study}")
        await page.get_by_text("I have read the above and agree").click()
        await page.get_by_role("button", name="Start").click()
        await page.wait_for_url(re.compile(r"[?&]r="), timeout=WAIT_MS)
        token = parse_qs(urlparse(page.url).query)["r"][0]
        scores = await asyncio.to_thread(honest_scores, db_url, token)
        await page.get_by_role("button", name="I understand").click(timeout=WAIT_MS)
        tid, answers = await next_trial(page, None), {}
        while tid is not None:
            value = scores[tid]
            if k == 0 and len(answers) == 1:  # the same trial from a second tab on the other server
                tab = await ctx.new_page()
                await tab.goto(f"{bases[1 - srv]}?r={token}")
                assert await next_trial(tab, None) == tid, "the other server shows the same open trial"
            await answer(page, tid, value)
            answers[tid] = value
            nxt = await next_trial(page, tid)
            if k == 0 and len(answers) == 2:
                await answer(tab, tid, value)  # the same answer again, through the other server
                assert await next_trial(tab, tid) == nxt, "the duplicate moves the second tab on, too"
                log["two_tabs"] += 1
                await tab.close()
            if nxt is None:
                break
            srv = 1 - srv  # the load balancer sends the next request to the other server
            await page.goto(f"{bases[srv]}?r={token}")
            resumed = await next_trial(page, None)
            assert resumed == nxt, f"rater {k} resumed at trial {resumed} on server {srv}, expected {nxt}"
            assert await progress(page) == f"Image {len(answers) + 1} of {TRIALS}"
            log["switches"] += 1
            tid = resumed
        await page.get_by_text("Your completion code").wait_for(timeout=WAIT_MS)
        log["answers"][token] = answers
    finally:
        await ctx.close()


async def run_raters(bases: list[str], study: str, n_raters: int, concurrency: int, db_url: str) -> dict:
    log = {"answers": {}, "two_tabs": 0, "switches": 0}
    gate = asyncio.Semaphore(concurrency)
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        try:
            async def guarded(k):
                async with gate:
                    await one_rater(browser, bases, study, k, log, db_url)

            await asyncio.gather(*(guarded(k) for k in range(n_raters)))
        finally:
            await browser.close()
    return log


async def failover_rater(proxy: SwitchableProxy, ports: list[int], server0, study: str, log: dict,
                         db_url: str) -> None:
    """A rater behind a load balancer (the proxy) whose server dies after the first answer: the balancer
    moves them to the other server, the page reconnects by itself and shows the next trial there."""
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 800})
            sockets: list = []
            page.on("websocket", lambda ws: sockets.append(ws))
            await page.goto(f"http://127.0.0.1:{proxy.port}/?study={study}")
            await page.get_by_text("I have read the above and agree").click()
            await page.get_by_role("button", name="Start").click()
            await page.wait_for_url(re.compile(r"[?&]r="), timeout=WAIT_MS)
            token = parse_qs(urlparse(page.url).query)["r"][0]
            await page.get_by_role("button", name="I understand").click(timeout=WAIT_MS)
            scores = await asyncio.to_thread(honest_scores, db_url, token)
            tid = await next_trial(page, None)
            await answer(page, tid, scores[tid])
            answers = {tid: scores[tid]}
            nxt = await next_trial(page, tid)
            proxy.backend = ports[1]
            await asyncio.to_thread(stop, server0)  # server 1 dies; its websocket closes
            deadline = time.monotonic() + WAIT_MS / 1000
            while len(sockets) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert len(sockets) >= 2, "the page did not reconnect after its server died"
            tid = nxt
            while tid is not None:
                assert await next_trial(page, None) == tid, "after the failover the same next trial is shown"
                await answer(page, tid, scores[tid])
                answers[tid] = scores[tid]
                tid = await next_trial(page, tid)
            await page.get_by_text("Your completion code").wait_for(timeout=WAIT_MS)
            log["answers"][token] = answers
            log["failover"] += 1
        finally:
            await browser.close()


async def admin_metrics(base: str) -> dict[str, str]:
    """Log in to the admin app at ``base``; the status metrics it shows {label: value}."""
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(base)
            await page.get_by_label("Admin password").fill(PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            metrics = page.locator("[data-testid='stMetric']")
            await page.wait_for_function(
                "() => document.querySelectorAll(\"[data-testid='stMetric']\").length === 6", timeout=WAIT_MS)
            out = {}
            for i in range(await metrics.count()):
                m = metrics.nth(i)
                label = (await m.locator("[data-testid='stMetricLabel']").inner_text()).strip()
                out[label] = (await m.locator("[data-testid='stMetricValue']").inner_text()).strip()
            return out
        finally:
            await browser.close()


@pytest.fixture
def cluster(make_study, db_url, tmp_path):
    """A study on PostgreSQL; two rater servers and two admin servers on it:
    (study, rater bases, admin bases, rater ports, processes)."""
    study = make_study(db_url, name="scale", trials_per_rater=TRIALS, repeats=REPEATS, votes_per_stimulus=50)
    env = {"MOS_DB_URL": db_url, "MOS_ADMIN_PASSWORD": PASSWORD}
    ports = [free_port() for _ in range(4)]
    apps = [APP, APP, ADMIN, ADMIN]
    procs = start_apps([(a, env, p, tmp_path / f"server{i}.log") for i, (a, p) in enumerate(zip(apps, ports))])
    try:
        bases = [f"http://127.0.0.1:{p}/" for p in ports]
        yield study, bases[:2], bases[2:], ports[:2], procs
    finally:
        stop_all(procs)


def check_cluster(cluster, n_raters: int, concurrency: int, failover: bool = True) -> dict:
    from sqlalchemy import func, select

    from db import open_database, study_status
    from db.models import Rater, Rating, Trial

    study, bases, admins, ports, procs = cluster
    t0 = time.perf_counter()
    log = asyncio.run(run_raters(bases, study.name, n_raters, concurrency, study.url))
    elapsed = time.perf_counter() - t0
    assert len(log["answers"]) == n_raters and log["two_tabs"] == 1
    assert log["switches"] == n_raters * (TRIALS - 1)
    log["failover"] = 0
    if failover:  # one more rater, behind a proxy, whose server is killed after the first answer
        proxy = SwitchableProxy(ports[0])
        try:
            asyncio.run(failover_rater(proxy, ports, procs[0], study.name, log, study.url))
        finally:
            proxy.close()
        n_raters += 1
    expected = {tid: v for answers in log["answers"].values() for tid, v in answers.items()}

    db = open_database(study.url)
    try:
        with db.session() as s:
            stored = dict(s.execute(select(Rating.trial_id, Rating.score)).all())
            n_rows = s.scalar(select(func.count()).select_from(Rating))
            n_trials = s.scalar(select(func.count()).select_from(Trial))
            completed = s.scalar(select(func.count()).select_from(Rater).where(Rater.completed_at.is_not(None)))
        status = study_status(db, study.name)
    finally:
        db.close()
    # Every answer stored exactly once (the two-tab answer too), no trial lost, the values given.
    assert n_rows == len(stored) == len(expected) == n_trials == n_raters * TRIALS
    assert stored == expected and completed == n_raters
    votes = status["votes_per_stimulus"]
    assert votes["max"] - votes["min"] <= 1, votes  # as with one server: every rater finished
    assert votes["mean"] * votes["items"] == n_raters * (TRIALS - REPEATS)

    # Both admin servers show the same status, and it is the database's.
    shown = [asyncio.run(admin_metrics(b)) for b in admins]
    assert shown[0] == shown[1], shown
    assert shown[0]["raters"] == shown[0]["completed"] == str(n_raters)
    assert shown[0]["ratings"] == str(status["ratings"])
    assert shown[0]["votes per item (min / mean)"] == f"{votes['min']} / {votes['mean']:.1f}"
    assert shown[0]["valid / target (balanced)"].endswith(" 0 screened out")  # honest raters: no top-up
    return {"seconds": elapsed, "ratings": n_rows, "answered": len(expected), "votes": votes,
            "switches": log["switches"], "failover": log["failover"]}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.timeout(300)
def test_raters_switching_between_two_servers(cluster):
    # The server-failover rater runs in the slow variant: on a heavily loaded 2-core machine its
    # reconnect can outlast the waits (seen once in a CI-like run beside a second test suite).
    stats = check_cluster(cluster, n_raters=6, concurrency=3, failover=False)
    print(f"\n6 raters on 2 servers: {stats}")


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.timeout(900)
def test_twenty_raters_switching_between_two_servers(cluster):
    stats = check_cluster(cluster, n_raters=20, concurrency=4)
    print(f"\n20 raters on 2 servers: {stats}")
