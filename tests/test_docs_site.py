"""The rendered documentation site (`_site/`, built by tools/build_docs.py) in a real headless Chromium.

Served from a local HTTP server on 127.0.0.1; every request that leaves that server, or fails, is an error.
"""
import functools, http.server, shutil, threading
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_site"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server():
    if not (SITE / "index.html").exists():
        pytest.fail("_site/ is missing: run `python tools/build_docs.py` first (dev.py test does)")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    handler = functools.partial(Quiet, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists(): pytest.skip("Debian's chromium is not installed (dev.py test installs it)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def visit(browser, url):
    "Load `url`; return the page and the list of problems (failed requests, requests to other hosts, HTTP errors)."
    page = browser.new_page()
    problems = []
    host = url.split("/")[2]
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.on("request", lambda r: r.url.split("/")[2] != host and not r.url.startswith("data:")
            and problems.append(f"left the site: {r.url}"))
    page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
    page.goto(url, wait_until="networkidle")
    return page, problems


def loaded_images(page):
    return page.eval_on_selector_all("article img", "els => els.filter(e => e.complete && e.naturalWidth > 0).length")


def test_home_page(server, browser):
    page, problems = visit(browser, server + "/index.html")
    assert "mmfm" in page.title()
    assert page.locator("h1").first.inner_text().replace("¶", "").strip() == "mmfm"
    assert page.get_by_text("Quick start").count() >= 1
    assert page.locator("nav").count() >= 1 and page.locator("a[href='audio.html']").count() >= 1
    assert problems == []


def test_audio_page_renders_figures_player_math_and_api(server, browser):
    page, problems = visit(browser, server + "/audio.html")
    assert "audio front end" in page.title().lower()
    assert loaded_images(page) >= 4  # waveform, windows, filterbank, spectrogram steps
    assert page.locator("audio").count() >= 1
    assert page.eval_on_selector("audio", "a => a.src.startsWith('data:audio/mpeg')")
    assert page.locator("math").count() >= 5  # LaTeX converted to MathML at build time
    assert page.locator("h3#load_audio").count() == 1  # show_doc entry
    assert problems == []


def test_search_index_covers_pages(server, browser):
    import json
    idx = json.loads((SITE / "search" / "search_index.json").read_text())
    locations = {d["location"].split("#")[0] for d in idx["docs"]}
    assert {"index.html", "audio.html"} <= locations
