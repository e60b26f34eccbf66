"""Display helpers for the rater app: blind images at 1:1 device pixels, viewport / pixel-ratio capture.

Why 1:1: a MOS of super-resolved images is only meaningful when each image pixel lands on one screen pixel
(ITU-T P.910 / BT.500 viewing conditions; the SRGAN MOS study, Ledig et al. 2017 Sec. 3.4, showed the images
unscaled). Streamlit's own ``st.image`` fits images to the column, so we emit an ``<img>`` with an explicit
CSS size of ``pixels / devicePixelRatio`` and ``max-width: none`` inside a horizontally scrollable box.

Blindness: the image bytes go into the page as a ``data:`` URI of a freshly re-encoded, pixel-only PNG, so no
path, file name, text chunk, ICC profile or EXIF can reach the browser, whatever the stimulus file holds.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from PIL import Image

# Room the page itself takes around the image (Streamlit's padding in wide layout, scroll bar); CSS px.
PAGE_MARGIN_W = 96
PAGE_MARGIN_H = 200
PAIR_GAP = 24  # CSS px between the two images of a pair

_VIEWPORT_JS = """
export default function(component) {
  const { setStateValue } = component;
  let last = "";
  const report = () => {
    const v = {w: window.innerWidth, h: window.innerHeight, dpr: window.devicePixelRatio || 1};
    const s = JSON.stringify(v);
    if (s !== last) { last = s; setStateValue('viewport', v); }
  };
  report();
  // Browser zoom changes devicePixelRatio and fires resize: the page re-renders at the new ratio.
  window.addEventListener('resize', report);
  return () => window.removeEventListener('resize', report);
}
"""

# An st.components.v2 component runs inline in the page (no iframe), so it reads the real window's size and
# pixel ratio and sends them back without a custom-component build.
_viewport_probe = st.components.v2.component("srkeras_viewport_probe", js=_VIEWPORT_JS)


_COOKIE_JS = """
export default function(component) {
  const d = component.data;
  if (d && d.name && d.value) {
    document.cookie = d.name + "=" + encodeURIComponent(d.value) + "; path=/; max-age=" + d.maxAge + "; SameSite=Lax";
  }
}
"""

# Sets a cookie from the page (Streamlit has no response headers to set one): the server reads it back
# with st.context.cookies when this browser opens a new session.
_cookie_setter = st.components.v2.component("srkeras_cookie_setter", js=_COOKIE_JS)


def remember_cookie(name: str, value: str, max_age_s: int, key: str = "cookie_setter") -> None:
    """Ask the browser to store cookie ``name=value`` for ``max_age_s`` seconds (path ``/``)."""
    _cookie_setter(key=key, data={"name": name, "value": value, "maxAge": int(max_age_s)}, height=0)


def cookie(name: str) -> str | None:
    """The cookie ``name`` this browser sent when the session started (None if absent or unknown)."""
    try:
        value = st.context.cookies.get(name)
    except Exception:  # no browser context (e.g. AppTest)
        return None
    return str(value) if value else None


@dataclass(frozen=True)
class Viewport:
    """The browser window as the rater sees it (CSS px) and its device pixel ratio."""

    width: int | None = None
    height: int | None = None
    dpr: float = 1.0

    @property
    def known(self) -> bool:
        return self.width is not None


def capture_viewport(key: str = "viewport_probe") -> Viewport:
    """Mount the probe; return the last reported viewport (unknown in AppTest or before the first report)."""
    result = _viewport_probe(key=key, default={"viewport": None}, on_viewport_change=lambda: None, height=0)
    value = getattr(result, "viewport", None)
    if not isinstance(value, dict):
        return Viewport()
    try:
        dpr = float(value.get("dpr") or 1.0)
        if not 0.25 <= dpr <= 8:  # a forged or broken report must not blow images up or shrink them away
            dpr = 1.0
        return Viewport(int(value["w"]), int(value["h"]), dpr)
    except (KeyError, TypeError, ValueError):
        return Viewport()


@st.cache_data(max_entries=512, show_spinner=False)
def image_data_uri(path: str) -> tuple[str, int, int]:
    """(data URI, width, height) of an image, re-encoded as a pixel-only PNG (no metadata of any kind).

    Cached per path: stimulus files are content-addressed and never change under the same name.
    """
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode if im.mode in ("L", "RGB", "RGBA") else "RGB"
            pixels = Image.frombytes(mode, im.size, im.convert(mode).tobytes())  # drops info / icc / exif
    except (OSError, ValueError) as err:
        raise RuntimeError(f"cannot read stimulus image {Path(path).name}: {err}") from err
    buf = io.BytesIO()
    pixels.save(buf, format="PNG", compress_level=1)  # fast: the bytes travel once per trial
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), pixels.width, pixels.height


def css_size(width: int, height: int, dpr: float) -> tuple[float, float]:
    """CSS px that cover exactly width x height device pixels."""
    return width / dpr, height / dpr


#: Pixel ratios of common screens and browser zoom levels; CSS media queries size images 1:1 for these
#: from the first paint, before the page has reported its own ratio to the server.
COMMON_DPRS = (1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4)


def img_tag(uri: str, width: int, height: int, dpr: float, alt: str, caption: str | None = None,
            dpr_known: bool = True) -> str:
    """An <img> drawn at one image pixel per device pixel.

    The size is a CSS rule per device-pixel ratio (``@media (resolution: Ndppx)``), so the browser
    sizes the image correctly even before the page's viewport report reaches the server. The rule
    for ``dpr`` comes last and so wins when ``dpr_known`` (it is the ratio the browser reported,
    e.g. an unusual zoom level); when the ratio is not known yet, the media rules win instead.
    """
    cls = f"mos-px-{width}x{height}"

    def rule(r):
        w, h = css_size(width, height, r)
        return f".{cls}{{width:{w:.4f}px;height:{h:.4f}px}}"

    media = "".join(f"@media (resolution:{r}dppx){{{rule(r)}}}" for r in COMMON_DPRS)
    css = media + rule(dpr) if dpr_known else rule(dpr) + media
    img = (
        f"<style>{css}</style>"
        f'<img class="{cls}" src="{uri}" alt="{alt}" draggable="false" '
        f'style="max-width:none;max-height:none;display:block;image-rendering:auto;flex:none" />'
    )
    if caption is None:
        return img
    return (
        f'<figure style="margin:0;flex:none"><figcaption style="font-weight:600;margin-bottom:4px">'
        f"{caption}</figcaption>{img}</figure>"
    )


def scroll_box(inner: str, marker: str, server_ms: float | None = None) -> str:
    """A horizontally scrollable row; ``marker`` is an opaque id the browser test waits on, ``server_ms``
    the server time from the submit to this page (read by benchmarks/bench_mos_app.py)."""
    timing = "" if server_ms is None else f' data-srv-ms="{server_ms:.1f}"'
    return (
        f'<div class="mos-stimulus" data-mos="{marker}"{timing} '
        f'style="overflow-x:auto;overflow-y:hidden;max-width:100%;padding-bottom:8px">'
        f'<div style="display:flex;gap:{PAIR_GAP}px;width:max-content">{inner}</div></div>'
    )


def fit_warning(widths: list[int], height: int, viewport: Viewport) -> str | None:
    """A message when the images cannot be seen unscaled at once in this window, else None."""
    if not viewport.known:
        return None
    need_w = sum(w / viewport.dpr for w in widths) + PAIR_GAP * (len(widths) - 1) + PAGE_MARGIN_W
    need_h = height / viewport.dpr + PAGE_MARGIN_H
    problems = []
    if need_w > viewport.width:
        problems.append(f"about {need_w - viewport.width:.0f} px too narrow")
    if need_h > viewport.height:
        problems.append(f"about {need_h - viewport.height:.0f} px too short")
    if not problems:
        return None
    return (
        "Your browser window is " + " and ".join(problems) + " to show the whole image at its true size. "
        "Please enlarge the window (or use full screen, F11) rather than zooming out; if you cannot, "
        "scroll to see all of it. Images are never shrunk to fit."
    )


def show_images(paths: list[str], captions: list[str] | None, viewport: Viewport, marker: str,
                server_ms: float | None = None) -> None:
    """Render one or more images side by side at 1:1 device pixels, with a warning when they do not fit."""
    tags, widths, height = [], [], 0
    for i, path in enumerate(paths):
        uri, w, h = image_data_uri(path)
        cap = captions[i] if captions else None
        alt = f"image {cap}" if cap else "image"
        tags.append(img_tag(uri, w, h, viewport.dpr, alt=alt, caption=cap, dpr_known=viewport.known))
        widths.append(w)
        height = max(height, h)
    warning = fit_warning(widths, height, viewport)
    if warning:
        st.warning(warning, icon="↔️")
    st.html(scroll_box("".join(tags), marker, server_ms))


# ------------------------------------------------------------------------- qualification and crowd hand-off
_SCREEN_JS = """
export default function(component) {
  const { setStateValue } = component;
  let last = "";
  const report = () => {
    const v = {w: window.innerWidth, h: window.innerHeight, dpr: window.devicePixelRatio || 1,
               sw: screen.availWidth || screen.width, sh: screen.availHeight || screen.height};
    const s = JSON.stringify(v);
    if (s !== last) { last = s; setStateValue('screen', v); }
  };
  report();
  window.addEventListener('resize', report);  // a larger window or another zoom level: checked again
  return () => window.removeEventListener('resize', report);
}
"""
_screen_probe = st.components.v2.component("srkeras_screen_probe", js=_SCREEN_JS)


@dataclass(frozen=True)
class Screen:
    """The browser window (``width`` x ``height``) and the screen's available area (``screen_w`` x
    ``screen_h``), CSS px, and the device pixel ratio (screen scaling times browser zoom)."""

    width: int
    height: int
    dpr: float
    screen_w: int
    screen_h: int


def capture_screen(key: str = "screen_probe") -> Screen | None:
    """Mount the screen probe; the last report, or None before the first one (or a malformed one)."""
    result = _screen_probe(key=key, default={"screen": None}, on_screen_change=lambda: None, height=0)
    v = getattr(result, "screen", None)
    if not isinstance(v, dict):
        return None
    try:
        s = Screen(int(v["w"]), int(v["h"]), float(v.get("dpr") or 1.0), int(v["sw"]), int(v["sh"]))
    except (KeyError, TypeError, ValueError):
        return None
    return s if 0.25 <= s.dpr <= 8 and min(s.width, s.height, s.screen_w, s.screen_h) > 0 else None


def needed_css(widths: list[int], height: int, dpr: float) -> tuple[float, float]:
    """CSS px a window needs to show images of ``widths`` side by side (and ``height``) at 1:1 device pixels,
    page margins included (as :func:`fit_warning` counts them)."""
    return (sum(w / dpr for w in widths) + PAIR_GAP * (len(widths) - 1) + PAGE_MARGIN_W,
            height / dpr + PAGE_MARGIN_H)


_REDIRECT_JS = """
export default function(component) {
  const d = component.data;
  if (!d || !d.url) { return; }
  const t = setTimeout(() => window.location.assign(d.url), d.delayMs || 0);
  return () => clearTimeout(t);
}
"""
_redirect = st.components.v2.component("srkeras_redirect", js=_REDIRECT_JS)


def redirect(url: str, delay_ms: int = 0, key: str = "redirect") -> None:
    """Send this browser to ``url`` after ``delay_ms`` (the crowd platform's completion page)."""
    _redirect(key=key, data={"url": url, "delayMs": int(delay_ms)}, height=0)


# ------------------------------------------------------------------------- browser response time (issue 23)
_CLOCK_JS = """
export default function(component) {
  const { setStateValue, data } = component;
  const marker = data && data.marker;
  let loadedAt = null;
  const ready = () => {
    const box = document.querySelector(`[data-mos="${marker}"]`);
    const imgs = box ? [...box.querySelectorAll('img')] : [];
    return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
  };
  const onLoad = () => { if (loadedAt === null && ready()) loadedAt = performance.now(); };
  const timer = setInterval(() => {
    onLoad();
    const box = document.querySelector(`[data-mos="${marker}"]`);
    if (box) box.querySelectorAll('img').forEach(i => i.addEventListener('load', onLoad));
    if (loadedAt !== null) clearInterval(timer);
  }, 10);
  const onSubmit = (ev) => {
    if (ev.type === 'keydown' && ev.key !== 'Enter' && ev.key !== ' ') return;
    const button = ev.target.closest && ev.target.closest('[data-testid="stFormSubmitButton"] button');
    if (!button || loadedAt === null) return;
    // Inside the form: held with the answer and sent by this same click (no rerun of its own).
    setStateValue('client_ms', {marker: marker, ms: Math.round(performance.now() - loadedAt)});
  };
  document.addEventListener('pointerdown', onSubmit, true);
  document.addEventListener('keydown', onSubmit, true);
  return () => {
    clearInterval(timer);
    document.removeEventListener('pointerdown', onSubmit, true);
    document.removeEventListener('keydown', onSubmit, true);
  };
}
"""

# Mounted inside a trial's form: it times, in the browser, from the moment the trial's images have
# loaded (their `load` event) to the press of Submit, and hands that time in with the answer.
_client_clock = st.components.v2.component("srkeras_client_clock", js=_CLOCK_JS)


def client_clock(marker: str, key: str) -> None:
    """Mount the browser clock of the trial whose images carry ``data-mos=marker`` (inside its form)."""
    _client_clock(key=key, data={"marker": marker}, default={"client_ms": None}, on_client_ms_change=lambda: None,
                  height=0)


def response_ms(server_ms: float | None, clock_state, marker: str) -> int | None:
    """The response time to store: the browser's image-load-to-click time when it reported one for this
    trial (a slow page redraw does not count), never more than the server's render-to-submit time,
    which bounds it (a forged or confused report cannot make an answer slower); else the server time."""
    server = None if server_ms is None else int(round(server_ms))
    value = clock_state.get("client_ms") if isinstance(clock_state, dict) else getattr(clock_state, "client_ms", None)
    try:
        client = float(value["ms"]) if isinstance(value, dict) and value.get("marker") == marker else None
    except (TypeError, ValueError):
        client = None
    if client is None or not math.isfinite(client) or client < 0:
        return server
    return int(round(client)) if server is None else min(server, int(round(client)))
