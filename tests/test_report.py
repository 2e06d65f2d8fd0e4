"""``neuronkit report RUN``: one self-contained HTML page, checked against the run's own files, then opened in a real
headless browser (Debian's chromium driven by Playwright) as a person would see it, with screenshots saved.

The browser test fails (it does not skip) when chromium is missing in CI (``.ci/run`` installs it and sets
``NEURONKIT_REQUIRE_BROWSER=1``); elsewhere it skips with the reason shown. Screenshots go to
``$NEURONKIT_SCREENSHOTS`` (default ``test-artifacts/report`` in the repository).
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from neuronkit import io as nkio
from neuronkit.cli import main
from neuronkit.inspect import load_history

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(
    os.environ.get("NEURONKIT_SCREENSHOTS", Path(__file__).resolve().parent.parent / "test-artifacts" / "report")
)
PLOTS_MLP = {
    "curve-loss",
    "curve-accuracy",
    "lr",
    "histograms",
    "unit-health",
    "grad-norms",
    "first-weights",
    "confusion",
    "mistakes",
}


def run_cli(*argv) -> tuple:
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def _train(out: Path, *flags) -> Path:
    rc, _, stderr = run_cli("train", "--data", "digits", "--out", out, *flags)
    assert rc == 0, stderr
    return out


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory) -> Path:
    run = _train(tmp_path_factory.mktemp("runs") / "mlp", "--epochs", "3", "--probe-every", "4")
    rc, stdout, stderr = run_cli("report", run)
    assert rc == 0 and stderr == "", stderr
    assert stdout.startswith(f"wrote {run / 'report.html'}")
    return run


def _plots(html: str) -> dict:
    """``{plot key: data}`` from the JSON embedded next to each figure."""
    out = {}
    for m in re.finditer(
        r'<figure class="plot" id="plot-([\w-]+)".*?<script type="application/json" '
        r'class="plot-data">(.*?)</script></figure>',
        html,
        re.S,
    ):
        out[m.group(1)] = json.loads(m.group(2).replace("<\\/", "</"))
    return out


def _history(run: Path) -> list:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines() if line.strip()]


def test_report_is_self_contained(mlp_run):
    html = (mlp_run / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page must not fetch anything"
    assert html.count('<img src="data:image/png;base64,') == len(PLOTS_MLP)
    assert set(_plots(html)) == PLOTS_MLP


def test_every_plot_shows_the_runs_data(mlp_run):
    html = (mlp_run / "report.html").read_text(encoding="utf-8")
    plots = _plots(html)
    epochs = _history(mlp_run)
    assert plots["curve-loss"]["epoch"] == [1, 2, 3]
    np.testing.assert_allclose(plots["curve-loss"]["train"], [e["loss"] for e in epochs])
    np.testing.assert_allclose(plots["curve-loss"]["validation"], [e["val_loss"] for e in epochs])
    np.testing.assert_allclose(plots["curve-accuracy"]["validation"], [e["val_accuracy"] for e in epochs])
    probes = load_history(mlp_run / "probes")
    rec = probes.layers["0"]
    assert plots["lr"]["step"] == rec.steps.tolist() and plots["lr"]["step"][:3] == [1, 5, 9]
    assert plots["histograms"]["0"]["counts"] == rec.hist.tolist()
    dead = (rec.unit["active_frac"] == 0).mean(1)
    np.testing.assert_allclose(plots["unit-health"]["0"]["dead"], dead)
    np.testing.assert_allclose(plots["grad-norms"]["1"]["grad_norm"], probes.layers["1"].layer["layer_grad_norm"])
    w = nkio.load(mlp_run / "model")[0].weight.data  # Sequential(Dense, Dense): the first layer's weights
    np.testing.assert_allclose(plots["first-weights"]["norms"], np.sqrt((w.astype(np.float64) ** 2).sum(1)), rtol=1e-6)
    assert plots["first-weights"]["shape"] == [128, 64]
    metrics = json.loads((mlp_run / "metrics.json").read_text())
    cm = np.array(plots["confusion"]["matrix"])
    assert cm.sum() == metrics["samples"] == 359
    assert np.trace(cm) / cm.sum() == pytest.approx(metrics["accuracy"])
    mistakes = plots["mistakes"]
    assert 0 < len(mistakes["index"]) <= 16 and all(t != p for t, p in zip(mistakes["true"], mistakes["pred"]))
    assert mistakes["confidence"] == sorted(mistakes["confidence"], reverse=True)
    assert "Test metrics" in html and f"{metrics['accuracy']:.4f}" in html


def test_report_of_a_cnn_without_probes_and_of_a_diverged_run(tmp_path):
    cnn = _train(tmp_path / "cnn", "--model", "lenet", "--epochs", "1", "--probe-every", "0")
    assert run_cli("report", cnn, "--out", tmp_path / "cnn.html")[0] == 0
    plots = _plots((tmp_path / "cnn.html").read_text(encoding="utf-8"))
    assert set(plots) == {"curve-loss", "curve-accuracy", "lr", "first-weights", "confusion", "mistakes"}
    assert plots["first-weights"]["shape"] == [16, 1, 3, 3]  # the first convolution's filters
    bad = _train(tmp_path / "bad", "--epochs", "2", "--optimizer", "sgd", "--lr", "3")  # the loss grows 1e12x an epoch
    assert run_cli("report", bad)[0] == 0
    html = (bad / "report.html").read_text(encoding="utf-8")
    assert "ERROR" in html and "learning rate" in html  # the diagnostics are in the page
    assert "curve-loss" in _plots(html)


def test_report_errors_are_one_line(tmp_path):
    rc, _, stderr = run_cli("report", tmp_path / "nope")
    assert rc == 1 and stderr.startswith("neuronkit: error: run directory not found")


# -- in a real browser ----------------------------------------------------------------------------------------------
def _browser(p):
    return p.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )


def test_report_in_headless_chromium(mlp_run):
    if CHROMIUM is None:
        msg = "chromium is not installed (apt-get install chromium); the report's browser test needs it"
        if os.environ.get("CI") or os.environ.get("NEURONKIT_REQUIRE_BROWSER"):
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            errors, requests = [], []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto((mlp_run / "report.html").resolve().as_uri())
            page.wait_for_load_state("load")
            assert errors == []
            assert all(u.startswith(("file:", "data:")) for u in requests), requests  # offline: nothing fetched
            assert page.title() == f"neuronkit run: {mlp_run.name}"
            keys = page.eval_on_selector_all("figure.plot", "els => els.map(e => e.dataset.plot)")
            assert set(keys) == PLOTS_MLP
            sizes = page.eval_on_selector_all(
                "figure.plot img",
                "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight, e.getBoundingClientRect().width])",
            )
            assert all(ok and w > 100 and h > 100 and shown > 100 for ok, w, h, shown in sizes), sizes
            # the loss the page carries is the run's loss, read in the browser
            shown = page.eval_on_selector("#plot-curve-loss script.plot-data", "e => JSON.parse(e.textContent)")
            np.testing.assert_allclose(shown["train"], [e["loss"] for e in _history(mlp_run)])
            page.screenshot(path=str(SHOTS / "report-full.png"), full_page=True)
            for key in sorted(PLOTS_MLP):
                page.locator(f"#plot-{key}").screenshot(path=str(SHOTS / f"plot-{key}.png"))
            nav = page.eval_on_selector_all("nav a", "els => els.map(e => e.textContent)")
            assert nav == ["Overview", "Learning", "Inside the neurons", "Test data", "Diagnostics", "Events"]
        finally:
            browser.close()
    for name in ["report-full.png", *[f"plot-{k}.png" for k in PLOTS_MLP]]:
        data = (SHOTS / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, name


def test_a_damaged_probe_history_is_one_line(mlp_run, tmp_path):
    run = tmp_path / "damaged"
    shutil.copytree(mlp_run, run)
    data = (run / "probes" / "probes.safetensors").read_bytes()
    (run / "probes" / "probes.safetensors").write_bytes(data[: len(data) // 3])
    for command in (["report", run], ["diagnose", run], ["inspect", run, "--layer", "0", "--no-image"]):
        rc, _, stderr = run_cli(*command)
        assert rc == 1 and stderr.startswith(f"neuronkit: error: {run / 'probes'} is damaged:"), (command, stderr)
        assert len(stderr.strip().splitlines()) == 1


# -- user strings inside the page's JSON -----------------------------------------------------------------------------
HOSTILE_LABEL = "<!--<script>"


def _report_with_label(path: Path, label: str) -> Path:
    """A page whose confusion matrix (and so its embedded JSON) carries ``label`` as a class name."""
    from neuronkit.inspect import Finding
    from neuronkit.report import ReportData, write_report

    y = np.array([0, 1, 1, 0, 1])
    out = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [3.0, 1.0], [0.0, 2.0]])
    data = ReportData(
        title="labels",
        epochs=[{"epoch": 1, "loss": 0.7, "lr": 0.1, "time": 0.1}],
        classes=[label, "b</script>&"],
        test=(np.zeros((5, 3)), y, out),
        findings=[Finding("plateau", "warning", {"scope": "training"}, "finding text", "remedy text")],
        events=[{"step": 3, "layer": "0", "unit": 1, "kind": "dead", "message": "event text"}],
    )
    write_report(path, data)
    return path


def test_embedded_json_escapes_what_would_end_or_hide_its_script(tmp_path):
    html = _report_with_label(tmp_path / "r.html", HOSTILE_LABEL).read_text(encoding="utf-8")
    blocks = re.findall(r'<script type="application/json" class="plot-data">(.*?)</script>', html, re.S)
    assert blocks and not any(c in b for b in blocks for c in "<>&")  # \u003c, \u003e, \u0026 instead
    assert json.loads(blocks[-1])["classes"] == [HOSTILE_LABEL, "b</script>&"]
    assert "<section id='diagnostics'>" in html and "<section id='events'>" in html


def test_a_hostile_class_label_hides_no_section_in_chromium(tmp_path):
    if CHROMIUM is None:
        msg = "chromium is not installed (apt-get install chromium); the report's browser test needs it"
        if os.environ.get("CI") or os.environ.get("NEURONKIT_REQUIRE_BROWSER"):
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    page_path = _report_with_label(tmp_path / "r.html", HOSTILE_LABEL)
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page()
            page.goto(page_path.resolve().as_uri())
            page.wait_for_load_state("load")
            sections = page.eval_on_selector_all("main > section", "els => els.map(e => e.id)")
            assert sections[-2:] == ["diagnostics", "events"], sections
            assert "finding text" in page.inner_text("#diagnostics") and "event text" in page.inner_text("#events")
            shown = page.eval_on_selector("#plot-confusion script.plot-data", "e => JSON.parse(e.textContent)")
            assert shown["classes"] == [HOSTILE_LABEL, "b</script>&"]
        finally:
            browser.close()
