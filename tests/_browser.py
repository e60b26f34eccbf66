"""Real-browser test helpers: ``streamlit run`` in a child process and Debian's Chromium via Playwright.

``playwright install`` cannot download browsers here, so tests drive /usr/bin/chromium (apt) and
skip when it or the playwright package is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_browser():
    """The playwright.sync_api module; skips the calling test module when no browser can run."""
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium)", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(app: Path, env: dict, port: int, log_path: Path, toolbar: str | None = "minimal") -> subprocess.Popen:
    """``streamlit run APP`` with extra ``env`` in its own process; returns once /_stcore/health answers.
    ``toolbar`` None: the repository's .streamlit/config.toml decides (as for a user)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **env)
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--global.developmentMode", "false",
           *(["--client.toolbarMode", toolbar] if toolbar else [])]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc
        except OSError:
            time.sleep(0.3)
    stop(proc)
    raise RuntimeError(f"streamlit did not start within 60 s: {log_path.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server started by :func:`start_app` (by its PID)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def launch_chromium(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)


def start_apps(specs: list[tuple[Path, dict, int, Path]]) -> list[subprocess.Popen]:
    """Several :func:`start_app` ``(app, env, port, log_path)`` at once (they boot in parallel); returns
    the processes in order. If any fails to start, the others are stopped (by PID) and the error raised."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(specs)) as ex:
        futures = [ex.submit(start_app, *spec) for spec in specs]
    procs, error = [], None
    for f in futures:
        try:
            procs.append(f.result())
        except Exception as err:  # noqa: BLE001 - re-raised below once the others are stopped
            error = error or err
    if error is not None:
        for p in procs:
            stop(p)
        raise error
    return procs


def stop_all(procs: list[subprocess.Popen]) -> None:
    """:func:`stop` every process, each by its PID, even if stopping one of them fails."""
    for p in procs:
        try:
            stop(p)
        except Exception:  # noqa: BLE001 - keep stopping the rest
            p.kill()


class SwitchableProxy:
    """A TCP proxy on a free localhost port forwarding to ``127.0.0.1:backend`` (HTTP and websockets alike),
    standing in for a load balancer: set :attr:`backend` to move new connections to another server
    (existing ones keep their server until it closes them). Runs in a daemon thread; :meth:`close` stops it."""

    def __init__(self, backend: int):
        import asyncio
        import threading

        self.backend = backend
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("proxy did not start")

    def _serve(self, ready) -> None:
        import asyncio

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader, writer):
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def main():
            self._server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            ready.set()
            async with self._server:
                await self._server.serve_forever()

        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(main())
        except BaseException:  # noqa: BLE001 - cancelled by close()
            pass

    def close(self) -> None:
        def shut():
            self._server.close()
            for task in __import__("asyncio").all_tasks(self._loop):
                task.cancel()

        self._loop.call_soon_threadsafe(shut)
        self._thread.join(10)
