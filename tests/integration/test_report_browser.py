"""The HTML report in a real browser: headless Chromium opens it from disk, draws it and measures every plot.

The report itself has no script; the test opens a copy with a few lines appended that write
each plot's rendered size, and how many of its shapes have a size, into attributes, then
reads them back from ``--dump-dom``. A plot that Chromium cannot draw (broken SVG, zero
size, hidden by the CSS) fails here, not in front of a reader. The screenshot is kept
under the test's tmp dir for a human to look at.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import report_docs
from runners import require

from mlcicd.reporting import build

PROBE = """<script>
for (const fig of document.querySelectorAll("figure.plot")) {
  const svg = fig.querySelector("svg");
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const drawn = svg ? [...svg.querySelectorAll("path, use, text")].filter(e => {
    const b = e.getBBox(); return b.width > 0 || b.height > 0; }).length : 0;
  fig.setAttribute("data-width", Math.round(box.width));
  fig.setAttribute("data-height", Math.round(box.height));
  fig.setAttribute("data-drawn", drawn);
}
document.body.setAttribute("data-probed", "yes");
</script>"""


class _Figures(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict[str, str]] = []
        self.probed = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "figure" and "plot" in values.get("class", "").split():
            self.figures.append(values)
        if tag == "body" and values.get("data-probed") == "yes":
            self.probed = True


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    require(found is not None, "chromium is not installed (`make system-test` installs it: apt-get install chromium)")
    assert found is not None
    return found


def _run(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               f"--user-data-dir={profile}", "--window-size=1280,4000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def test_every_plot_is_drawn_with_a_size_in_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    report_docs.write_pipeline(tmp_path / "mlci-report")
    page, _, seconds = build([tmp_path / "mlci-report"], tmp_path / "mlci-report" / "report.html")
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))

    dump = _run(browser, tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert dump.returncode == 0, dump.stderr[-2000:]
    parsed = _Figures()
    parsed.feed(dump.stdout)
    assert parsed.probed, "the probe script did not run: " + dump.stdout[:500]
    kinds = [f["data-plot"] for f in parsed.figures]
    assert kinds == ["drift", "roc-pr", "fairness", "timeline"]
    for figure in parsed.figures:
        width, height, drawn = (int(figure[k]) for k in ("data-width", "data-height", "data-drawn"))
        assert width > 400 and height > 150, figure  # laid out at its size, not collapsed
        assert drawn > 20, figure  # bars, lines, markers and labels with a size, not an empty frame

    shot = tmp_path / "report.png"
    taken = _run(browser, tmp_path / "profile", f"--screenshot={shot}", page.as_uri())
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    with shot.open("rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(header[16:20], "big") == 1280 and int.from_bytes(header[20:24], "big") == 4000
    assert shot.stat().st_size > 100_000  # a blank page compresses to a few kilobytes
    assert seconds < 30  # a gross regression only: this machine's load varies; the README gives the measured time

