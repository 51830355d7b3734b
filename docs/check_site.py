"""Open the built site in headless Chromium and check what a reader would see.

    python docs/check_site.py                  # after the README's site command

The site (``build/site``) is served on 127.0.0.1 by a local ``http.server`` started here; every
request that leaves 127.0.0.1 is blocked and reported, so the check also shows that the site
needs no network (MathJax and the theme's assets are in the site). Each page is opened in
Chromium (``/usr/bin/chromium``, driven by playwright), and the check fails when

- a tutorial page shows fewer figures than its text introduces (``**Figure `NN_name.png`**``),
  or any image of any page did not load (``naturalWidth`` 0, or drawn with zero size);
- math is left raw: a math element MathJax did not typeset, or visible text (outside code)
  that still holds ``$...$``, ``\\frac``, ``\\(`` or another TeX command;
- an equation is wider than its column at the 1,280-pixel window: a typeset formula
  (``mjx-container``) whose ``scrollWidth`` exceeds the ``clientWidth`` of the block it sits in
  (its parent, or the nearest non-inline ancestor), so that its
  right end is cut off or must be scrolled to (break it into lines, e.g. ``\\begin{aligned}``);
- the browser console logs an error, a script throws, or a request fails;

and it saves screenshots of the index and of one tutorial page to ``build/screenshots/``.
Every tutorial (``tutorials/[0-9][0-9]_*.py``) must have its page, and every ``.html`` page of
docs/ and tutorials/ is checked.
"""
import argparse
import functools
import http.server
import re
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import unquote

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
FIGURE_RE = re.compile(r"\*\*Figure `(\d\d_[\w.-]+\.png)`")
SCREENSHOT_TUTORIAL = "01_latent_variable_models"      # falls back to the first tutorial

# Run in the page once MathJax is done: what a reader sees of the math and the images.
INSPECT_PAGE = r"""() => {
  const raw = /\$[^$\s][^$]*\$|\$\$|\\\(|\\\)|\\\[|\\\]|\\(frac|mathcal|mathbb|sum|int|log|sigma|mu|theta|phi|begin|left|right|operatorname|mathrm|text)\b/;
  const skip = "pre, code, script, style, mjx-container, .highlight, kbd, samp, textarea";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const rawText = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip) || !parent.checkVisibility()) continue;
    const match = node.textContent.match(raw);
    if (match) rawText.push(node.textContent.trim().slice(0, 120));
  }
  const mathElements = [...document.querySelectorAll("span.math, div.math")];
  const untypeset = mathElements.filter(el => !el.querySelector("mjx-container"))
                                .map(el => el.textContent.trim().slice(0, 80));
  const mathErrors = [...document.querySelectorAll("mjx-merror, [data-mjx-error]")]
                       .map(el => el.getAttribute("data-mjx-error") || el.textContent);
  const images = [...document.querySelectorAll("article img, main img, .cell_output img")];
  const unique = [...new Set(images)];
  const badImages = unique.filter(img => {
    const box = img.getBoundingClientRect();
    return !img.complete || img.naturalWidth === 0 || box.width === 0 || box.height === 0;
  }).map(img => img.getAttribute("src"));
  const outputImages = [...document.querySelectorAll(".cell_output img")].filter(
    img => img.complete && img.naturalWidth > 0);
  // an equation wider than the column it sits in (the theme lets it scroll or cuts it off)
  const tooWide = [];
  for (const el of document.querySelectorAll("mjx-container")) {
    // the column: the nearest ancestor laid out as a block (an inline span has no width)
    let column = el.parentElement;
    while (column && getComputedStyle(column).display.startsWith("inline")) column = column.parentElement;
    if (!column || !el.checkVisibility()) continue;
    const overflow = el.scrollWidth - column.clientWidth;
    if (overflow > 1) {
      let tex = "";
      try {
        const items = MathJax.startup.document.getMathItemsWithin(el);
        tex = items.length ? items[0].math : "";
      } catch (error) { tex = ""; }
      tooWide.push(`${overflow}px too wide: ${(tex || column.textContent).trim().slice(0, 100)}`);
    }
  }
  return {rawText, mathCount: mathElements.length, untypeset, mathErrors, tooWide,
          images: unique.length, badImages, outputImages: outputImages.length};
}"""


def serve(directory):
    """A quiet http.server on 127.0.0.1 (a free port) in a daemon thread; returns it."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def tutorial_pages(site):
    """{name: page} for every tutorials/NN_name.py; page is None where the site lacks it."""
    names = sorted(p.stem for p in (ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
    return {name: (site / "tutorials" / f"{name}.html") for name in names}


def expected_figures(name):
    return sorted(set(FIGURE_RE.findall((ROOT / "tutorials" / f"{name}.py").read_text())))


def cancelled_by_the_browser(request, base, site):
    """True for a request the browser itself aborted (net::ERR_ABORTED) for a file the site has.

    Chromium aborts requests still in flight when it is done with a page (a MathJax font
    the typesetting no longer waits for): the file is there, nothing is broken.  A missing
    file is an HTTP 404, which is a response, not a failed request, and is caught by the
    page's own checks.
    """
    if "ERR_ABORTED" not in str(request.failure) or base is None or not request.url.startswith(base):
        return False
    return (site / unquote(request.url[len(base):].split("?")[0].split("#")[0])).is_file()


def check_page(page, url, wanted_figures=None, base=None, site=None):
    """Open URL, wait for MathJax, and return the list of problems found."""
    problems, console = [], []
    on_console = lambda message: console.append(message) if message.type == "error" else None  # noqa: E731
    on_error = lambda error: console.append(f"uncaught: {error}")  # noqa: E731

    def on_failed(request):
        if not cancelled_by_the_browser(request, base, site):
            console.append(f"request failed: {request.url} ({request.failure})")
    page.on("console", on_console)
    page.on("pageerror", on_error)
    page.on("requestfailed", on_failed)
    try:
        response = page.goto(url, wait_until="load")
        if response is None or not response.ok:
            return {"problems": [f"HTTP {response.status if response else '?'}"]}
        page.wait_for_function("() => !window.MathJax || (MathJax.startup && MathJax.startup.promise)",
                               timeout=30_000)
        page.evaluate("() => window.MathJax ? MathJax.startup.promise : null")
        # images below the fold are loaded too (none is lazy, but decoding takes its time)
        page.evaluate("() => Promise.all([...document.images].map(i => i.decode().catch(() => null)))")
        seen = page.evaluate(INSPECT_PAGE)
    finally:
        page.remove_listener("console", on_console)
        page.remove_listener("pageerror", on_error)
        page.remove_listener("requestfailed", on_failed)
    for message in console:
        problems.append(f"console: {getattr(message, 'text', message)}")
    if seen["untypeset"]:
        problems.append(f"{len(seen['untypeset'])} of {seen['mathCount']} math elements not "
                        f"typeset, e.g. {seen['untypeset'][:3]}")
    if seen["mathErrors"]:
        problems.append(f"MathJax errors: {seen['mathErrors'][:5]}")
    if seen["tooWide"]:
        problems.append(f"{len(seen['tooWide'])} equations wider than their column: {seen['tooWide'][:10]}")
    if seen["rawText"]:
        problems.append(f"raw TeX in the visible text: {seen['rawText'][:5]}")
    if seen["badImages"]:
        problems.append(f"images not shown: {seen['badImages']}")
    if wanted_figures is not None and seen["outputImages"] < len(wanted_figures):
        problems.append(f"shows {seen['outputImages']} figures in its outputs; its text introduces "
                        f"{len(wanted_figures)}: {wanted_figures}")
    seen["problems"] = problems
    return seen


def screenshot_near_first_figure(page, path):
    """A viewport screenshot with the first output figure and the text above it."""
    # one instant jump down: the theme scrolls smoothly, and scrolling back up would bring up
    # its "back to top" button
    top = page.evaluate("""() => {
      const figure = document.querySelector(".cell_output img");
      const top = figure ? Math.max(0, figure.getBoundingClientRect().top + window.scrollY - 300) : 0;
      window.scrollTo({top: top, behavior: "instant"});
      return Math.round(top);
    }""")
    page.wait_for_function(f"() => Math.abs(window.scrollY - {top}) < 2", timeout=10_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "build" / "screenshots")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        help="the Chromium executable (default: chromium on PATH)")
    args = parser.parse_args(argv)
    site = args.site.resolve()
    if not (site / "docs" / "index.html").exists():
        sys.exit(f"no site in {site}: build it first (the README's site command)")
    if not Path(args.chromium).exists():
        sys.exit(f"no Chromium at {args.chromium} (Debian: apt-get install chromium)")
    args.screenshots.mkdir(parents=True, exist_ok=True)

    tutorials = tutorial_pages(site)
    failures = {f"tutorials/{name}.html": ["no page for this tutorial"]
                for name, page in tutorials.items() if not page.exists()}
    pages = sorted(p.relative_to(site).as_posix() for folder in ("docs", "tutorials")
                   for p in (site / folder).rglob("*.html"))
    server = serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True,
                                             args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        blocked = []

        def only_local(route):
            if route.request.url.startswith(base):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()
        context.route("**/*", only_local)
        page = context.new_page()
        for relative in pages:
            name = Path(relative).stem if relative.startswith("tutorials/") else None
            wanted = expected_figures(name) if name in tutorials else None
            seen = check_page(page, base + relative, wanted, base=base, site=site)
            if "mathCount" not in seen:
                failures[relative] = seen["problems"]
                continue
            summary = (f"{seen['mathCount']:4d} math, {seen['images']:2d} images"
                       + (f" ({seen['outputImages']} figures)" if wanted is not None else ""))
            print(f"{'FAIL' if seen['problems'] else 'ok  '} {relative:45s} {summary}")
            if seen["problems"]:
                failures[relative] = seen["problems"]
            if relative == "docs/index.html":
                page.screenshot(path=str(args.screenshots / "index.png"))
        shot = SCREENSHOT_TUTORIAL if SCREENSHOT_TUTORIAL in tutorials else next(iter(tutorials))
        page.goto(base + f"tutorials/{shot}.html", wait_until="load")
        page.evaluate("() => window.MathJax ? MathJax.startup.promise : null")
        screenshot_near_first_figure(page, args.screenshots / "tutorial.png")
        browser.close()
    server.shutdown()
    if blocked:
        failures["(network)"] = [f"requests outside the site: {sorted(set(blocked))[:10]}"]
    print(f"screenshots: {args.screenshots / 'index.png'}, {args.screenshots / 'tutorial.png'}")
    if failures:
        for relative, problems in failures.items():
            print(f"\n{relative}:")
            for problem in problems:
                print(f"  - {problem}")
        print(f"\n{len(failures)} of {len(pages)} pages failed the browser check")
        return 1
    print(f"all {len(pages)} pages passed ({len(tutorials)} tutorials)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
