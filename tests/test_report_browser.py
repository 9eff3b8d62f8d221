"""The report opened in a real browser (headless Chromium over DevTools, no network): no
errors, every figure and widget drawn, every section there, and hostile strings inert when
the scripts really run. Also the page driver itself (`interp.viz.browser`).

What the page should contain is counted from the HTML source, so sections added to the report
later are checked too, without changing these tests.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
from html.parser import HTMLParser

import pytest

import interp
from interp.errors import InterpError
from interp.viz.browser import BrowserSession, open_page
from interp.viz.devtools import BrowserTimeout

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="opening the report in a browser needs Debian's chromium; ./dev test installs it",
)

# Plotly roots that finished drawing (plotly adds the class, then its SVG layers).
PLOTLY_DRAWN = """[...document.querySelectorAll('.js-plotly-plot')]
    .filter(e => e.querySelector('svg.main-svg')).map(e => e.id)"""
WIDGETS = """[...document.querySelectorAll('div[id^="circuits-vis-"]')]
    .map(e => [e.id, e.children.length, e.getBoundingClientRect().height])"""


class _Headings(HTMLParser):
    """The text of every <h2> in a page source, as the browser's textContent has it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._inside = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "h2":
            self._inside += 1
            self.found.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2" and self._inside:
            self._inside -= 1

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.found[-1] += data


def _squash(text: str) -> str:
    return " ".join(text.split())


def h2_texts(source: str) -> list[str]:
    parser = _Headings()
    parser.feed(source)
    return [_squash(t) for t in parser.found]


def plotly_ids(source: str) -> list[str]:
    """The ids of the figure divs plotly's to_html wrote (one per Plotly.newPlot call)."""
    return re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', source)


def widget_ids(source: str) -> set[str]:
    return set(re.findall(r'<div id="(circuits-vis-[0-9a-f]+)"', source))


def assert_png_drawn(png: bytes, size: tuple[int, int]) -> None:
    from PIL import Image

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    img = Image.open(io.BytesIO(png)).convert("RGB")
    assert img.size == size
    small = img.resize((max(1, img.width // 8), max(1, img.height // 8)))
    data = list(small.getdata())
    inked = sum(1 for r, g, b in data if min(r, g, b) < 235) / len(data)
    assert inked > 0.05, inked  # headings, tables, heatmaps; a blank page has none
    assert len(set(data)) > 100


def wait_until_drawn(page, source: str) -> None:
    """Wait for every plotly figure and circuitsvis widget of `source` to be drawn."""
    n_plots, n_widgets = len(plotly_ids(source)), len(widget_ids(source))
    page.wait_for(f"({PLOTLY_DRAWN}).length >= {n_plots}")
    page.wait_for(f"({WIDGETS}).filter(w => w[1] > 0).length >= {n_widgets}")


# ------------------------------------------------------------------ the demo report
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo report (run once: it takes a while), opened in a browser with no network."""
    from interp.demo import run_demo

    path = run_demo("organism", tmp_path_factory.mktemp("demo"), n=8, seed=0)
    source = path.read_text(encoding="utf-8")
    with open_page(path, width=1100, timeout=120) as page:
        wait_until_drawn(page, source)
        yield page, source


def test_report_has_no_errors_offline(demo):
    page, _ = demo
    assert page.console_errors == []
    # Nothing was even attempted over the network: the page loads only itself.
    urls = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert [u for u in urls if not u.startswith("file:")] == []


def test_every_plotly_figure_is_drawn(demo):
    page, source = demo
    expected = plotly_ids(source)
    assert len(expected) >= 10 and len(expected) == source.count("Plotly.newPlot(")
    assert sorted(page.evaluate(PLOTLY_DRAWN)) == sorted(expected)


def test_every_attention_widget_is_drawn(demo):
    page, source = demo
    widgets = page.evaluate(WIDGETS)
    assert widget_ids(source) and {w[0] for w in widgets} == widget_ids(source)
    for wid, children, height in widgets:
        assert children > 0 and height > 100, (wid, children, height)


def test_every_section_heading_is_shown(demo):
    page, source = demo
    expected = h2_texts(source)
    assert len(expected) >= 10 and "Logit lens" in expected
    # The attention widget draws headings of its own (the selected head's name): not sections.
    shown = page.evaluate(
        "[...document.querySelectorAll('h2')]"
        ".filter(h => h.offsetHeight > 0 && !h.closest('[id^=\"circuits-vis-\"]'))"
        ".map(h => h.textContent)"
    )
    assert [_squash(t) for t in shown] == expected


def test_full_page_screenshot(demo, tmp_path):
    page, _ = demo
    width, height = page.content_size()
    target = tmp_path / "report.png"
    png = page.screenshot(target, full_page=True, scale=1)
    assert target.read_bytes() == png
    assert height > 2000
    assert_png_drawn(png, (round(width), round(height)))


# ------------------------------------------------------------------ hostile strings
PAYLOAD = '</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def test_hostile_strings_do_not_run(organism, tmp_path):
    """Titles, labels, tokens, descriptions and report arguments carrying markup show as text;
    no script in them runs (the scripts of the page itself run: it is drawn)."""
    task = interp.tasks.induction(organism, n=4, seed=0)
    results = [
        interp.attribution.attention_patterns(organism, task, [(0, 0), (1, 1)]),
        interp.attribution.direct_logit(organism, task),
    ]
    for res in results:
        res.title = f"{PAYLOAD} {res.kind}"
        res.meta["description"] = PAYLOAD
        if isinstance(getattr(res, "tokens", None), list):  # AttentionResult's field
            res.tokens = [PAYLOAD] * len(res.tokens)  # type: ignore[attr-defined]
        for dim in res.labels:
            res.labels[dim] = [f"{PAYLOAD}{i}" for i in range(len(res.labels[dim]))]
    items = [*results, (PAYLOAD, "<p>free-form section</p>")]
    path = interp.report(items, tmp_path / "evil.html", title=PAYLOAD, intro=PAYLOAD)
    source = path.read_text(encoding="utf-8")
    with open_page(path) as page:
        wait_until_drawn(page, source)
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.console_errors == []  # an injected <img src=x> would fail to load
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        headings = page.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)")
        assert f"{PAYLOAD} attention" in headings and PAYLOAD in headings
        assert page.evaluate("document.title") == PAYLOAD


def test_the_hostile_check_would_catch_a_payload_that_runs(tmp_path):
    """The oracle of the test above: the same payload, unescaped, does run and does log."""
    path = tmp_path / "raw.html"
    path.write_text(f"<!DOCTYPE html><html><body><script>x = 1; {PAYLOAD}</body></html>")
    with open_page(path) as page:
        page.wait_for("window.__pwned !== undefined", timeout=10)
        assert page.evaluate("window.__pwned") in (1, 2)
        page.wait_for("window.__pwned === 2", timeout=10)  # the <img> onerror ran too
        assert any(
            "failed to load" in e and e.endswith("/x (net::ERR_FILE_NOT_FOUND)")
            for e in page.console_errors
        ), page.console_errors


# ------------------------------------------------------------------ the page driver
def test_driver_reports_errors_and_has_no_network(tmp_path):
    page_file = tmp_path / "p.html"
    page_file.write_text(
        "<!DOCTYPE html><html><head>"
        "<script src='https://cdn.jsdelivr.net/npm/nothing.js'></script></head><body>"
        "<p id='x'>hello</p><script>console.error('boom'); window.done = false;"
        "fetch('http://example.com/data').then(() => window.fetched = true)"
        "  .catch(() => window.done = true);"
        "setTimeout(() => { throw new Error('late failure'); }, 10);</script></body></html>",
        encoding="utf-8",
    )
    with open_page(page_file, width=600, height=400) as page:
        page.wait_for("window.done === true", timeout=10)
        page.wait_for("true", timeout=1)
        assert page.evaluate("document.getElementById('x').textContent") == "hello"
        assert page.evaluate("Promise.resolve({a: [1, 2]})") == {"a": [1, 2]}
        assert page.evaluate("window.fetched") is None
        errors = "\n".join(page.console_errors)
        assert "console.error: boom" in errors
        assert "failed to load https://cdn.jsdelivr.net/npm/nothing.js (blocked" in errors
        assert "failed to load http://example.com/data" in errors
        assert "uncaught exception" in errors and "late failure" in errors
        with pytest.raises(InterpError, match="script failed in the page: Error: nope"):
            page.evaluate("(() => { throw new Error('nope'); })()")
        with pytest.raises(InterpError, match=r"was not true after 0\.3 s"):
            page.wait_for("window.never", timeout=0.3)
        from PIL import Image
        from pypdf import PdfReader

        png = Image.open(io.BytesIO(page.screenshot(scale=2)))  # a mostly white page
        assert png.format == "PNG" and png.size == (1200, 800)
        pdf = page.pdf()

        reader = PdfReader(io.BytesIO(pdf))
        assert len(reader.pages) == 1
        assert float(reader.pages[0].mediabox.width) == pytest.approx(600 * 0.75, abs=1)


def test_driver_closes_the_browser_also_on_error(tmp_path):
    # Its own browser (browser_session would reuse the module's, held by the demo fixture).
    with pytest.raises(RuntimeError, match="inside"), BrowserSession() as session:
        proc = session._browser.subprocess
        profile = session._browser._browser_impl.tmp_dir.path
        raise RuntimeError("inside the block")
    assert proc.poll() is not None  # the browser has exited
    assert not profile.exists()  # and its temporary profile is gone
    with pytest.raises(InterpError, match="not a file"), open_page(tmp_path / "missing.html"):
        pass


def test_driver_times_out_instead_of_hanging(tmp_path):
    page_file = tmp_path / "p.html"
    page_file.write_text("<!DOCTYPE html><p>hi</p>", encoding="utf-8")
    with BrowserSession(timeout=20) as session:
        proc = session._browser.subprocess
        page = session.open_page(page_file)
        with pytest.raises(BrowserTimeout, match="within 1 s"):
            page.evaluate("while (true) {}", timeout=1)  # the page never answers again
    assert proc.poll() is not None  # closing did not wait for the stuck page: it ended it
    with BrowserSession(timeout=20) as session:
        page = session.open_page(page_file)
        os.killpg(session._browser.subprocess.pid, signal.SIGKILL)  # Chromium dies
        with pytest.raises(InterpError, match="Chromium"):
            page.evaluate("1")
