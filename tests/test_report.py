"""`synthdrift report` as a person sees it: the bundled example's report opened in headless Chromium
(Debian's package, installed by `make tools`), offline."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from monitor.commands import example
from monitor.commands.cli import main

# Any request would fail: no proxy answers, no name resolves (and the page's policy forbids them).
OFFLINE = ["--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]


def chromium(page: Path, *arguments: str) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and the messages of its console."""
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is missing: run `make tools`"
    done = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=15000", *OFFLINE, *arguments, page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("report")
    paths = example.write(directory, rows=3000, events=4000, drift_at=2000)
    profile = directory / "profile.json"
    assert main(["profile", "build", "--spec", str(paths["spec"]), "--input", str(paths["train"]),
                 "--output", str(profile), "--min-segment-rows", "100"]) == 0
    page = directory / "report.html"
    assert main(["report", "--profile", str(profile), "--input", str(paths["live"]), "--output", str(page),
                 "--window", "1000"]) == 0
    return page


def test_the_console_check_would_see_a_blocked_request(tmp_path: Path) -> None:
    page = tmp_path / "fetches.html"
    page.write_text("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
                    "'none'; script-src 'unsafe-inline'\"></head><body><script>fetch('https://example.com/x')"
                    ".catch(() => {});</script></body></html>")
    _, console = chromium(page, "--dump-dom")
    assert any("example.com" in line for line in console)


def test_the_report_is_one_file_that_fetches_nothing(report: Path) -> None:
    text = report.read_text()
    assert 1e6 < len(text.encode()) < 8e6  # Plotly's bundle inlined; small enough to mail
    assert not re.search(r"<(link|iframe)\b|\bsrc=[\"']?https?:", text)
    assert "Content-Security-Policy" in text
    assert "Slices where live traffic departs" in text and "amount=" in text  # the drifted amount bins


def test_the_report_renders_every_chart_with_the_drifted_features_first(report: Path, tmp_path: Path) -> None:
    dom, console = chromium(report, "--dump-dom")
    assert console == []  # no script error, no blocked request
    charts = re.findall(r'<div id="([\w-]+)" class="chart', dom)
    assert "heatmap" in charts and sum(c.startswith("feature-") for c in charts) >= 9
    rendered = dom.split('<div id="')
    for chart in charts:
        body = next(part for part in rendered if part.startswith(f'{chart}"'))
        assert 'class="main-svg"' in body, f"{chart} did not render"
        assert re.search(r'class="(point|heatmaplayer|hm)"', body) or "<image" in body, f"{chart} has no data"
    headings = re.findall(r"<h3>([^<]+) <span[^>]*>\[([^\]]+)\]</span> <span[^>]*>(\w+)</span>", dom)
    assert headings[0][2] == "critical" and {h[0].strip() for h in headings[:3]} & {"amount", "body"}
    assert [h[2] for h in headings] == sorted((h[2] for h in headings), key=["critical", "warning", "ok"].index)
    shot = tmp_path / "report.png"
    chromium(report, "--hide-scrollbars", "--window-size=1280,2200", f"--screenshot={shot}")
    assert shot.stat().st_size > 50_000  # a blank page compresses to a few kB
