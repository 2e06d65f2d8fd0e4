"""The playground's speed, in a real browser (Debian's chromium driven by Playwright).

1. Heatmap updates per second: spirals with a 6x8 tanh network, training; the page counts how many times it redrew
   every neuron's heatmap over ``--seconds`` (issue 13's target: at least 30 per second over 10 s).
2. Steps per second on MNIST in the page (training, with the page open and drawing) against ``neuronkit train`` with
   the same model (784-256-128-10, ReLU, Adam 1e-3, batch 128), in one process, alternating, ``--rounds`` rounds:
   ``neuronkit train`` runs two epochs with ``--probe-every 20`` as the page (the second epoch's steps divided by its
   time, validation included, as the page's loop validates too); the page trains for ``--seconds`` after 2 s of
   warm-up (steps counted between two reads of the trainer's step).
   Target: the page at >= 90 % of ``neuronkit train``.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_playground.py \
        --data-dir ../shared/data [--rounds 3] [--seconds 10]      (--rounds 0: the heatmap rate only)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_info

from neuronkit.cli import main
from neuronkit.cli.playground import digits_arrays, mnist_provider
from neuronkit.playground import Session
from neuronkit.playground.server import Running

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
TOY = "data=spirals&hidden=8,8,8,8,8,8&activations=tanh,tanh,tanh,tanh,tanh,tanh&lr=0.03&batch_size=16"
MNIST = "data=mnist&hidden=256,128&activations=relu,relu&optimizer=adam&lr=0.001&batch_size=128"


def wait(page, expr, timeout=120):
    t = time.time()
    while time.time() - t < timeout:
        if page.evaluate(expr):
            return
        time.sleep(0.05)
    raise TimeoutError(expr)


def open_page(browser, srv, fragment):
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.goto(f"{srv.url}#{fragment}")
    wait(page, "() => !!(window.nkPlayground && window.nkPlayground.frame && window.nkPlayground.frame.layers)")
    return page


def heatmap_rate(browser, seconds: float) -> dict:
    srv = Running(Session(providers={"digits": digits_arrays}).start())
    try:
        page = open_page(browser, srv, TOY)
        wait(page, "() => JSON.stringify(window.nkPlayground.frame.layers) === '[8,8,8,8,8,8,2]'")
        page.click("#play")
        time.sleep(1.0)
        count = "() => window.nkPlayground.stats.heatmapUpdates"
        ss = srv.session
        h0, s0, f0, c0, t0 = page.evaluate(count), ss.trainer.step, ss.frame_count, ss.frame_seconds, time.time()
        time.sleep(seconds)
        h1, s1, f1, c1, t1 = page.evaluate(count), ss.trainer.step, ss.frame_count, ss.frame_seconds, time.time()
        page.close()
        return {
            "heatmap_updates_per_s": (h1 - h0) / (t1 - t0),
            "steps_per_s": (s1 - s0) / (t1 - t0),
            "frames_per_s": (f1 - f0) / (t1 - t0),
            "frame_ms": 1000 * (c1 - c0) / max(1, f1 - f0),
        }
    finally:
        srv.stop()


def cli_steps_per_s(data_dir: str) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-playground-"))
    try:
        argv = ["train", "--data", "mnist", "--data-dir", data_dir, "--hidden", "256,128", "--batch-size", "128"]
        argv += ["--epochs", "2", "--lr", "0.001", "--probe-every", "20", "--out", str(out / "run")]  # as the page
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(argv) == 0
        lines = (out / "run" / "history.jsonl").read_text().splitlines()
        first, second = (json.loads(x) for x in lines[-2:])
        return (second["steps"] - first["steps"]) / second["time"]  # the second epoch: past the warm-up
    finally:
        shutil.rmtree(out, ignore_errors=True)


def page_steps_per_s(page, srv, seconds: float) -> float:
    page.click("#play")
    time.sleep(2.0)  # past the first steps
    s0, t0 = srv.session.trainer.step, time.perf_counter()
    time.sleep(seconds)
    s1, t1 = srv.session.trainer.step, time.perf_counter()
    page.click("#play")
    return (s1 - s0) / (t1 - t0)


def main_(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.environ.get("NEURONKIT_DATA", "../shared/data"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    blas = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads")) for i in threadpool_info()]
    print(f"BLAS: {blas}; load average {os.getloadavg()}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        r = heatmap_rate(browser, a.seconds)
        print(f"spirals, 6x8 tanh: {r['heatmap_updates_per_s']:.1f} heatmap updates/s over {a.seconds:.0f} s "
              f"(the server computed {r['frames_per_s']:.1f} frames/s, {r['frame_ms']:.1f} ms each; "
              f"{r['steps_per_s']:.0f} training steps/s)")  # fmt: skip
        if a.rounds == 0:  # --rounds 0: the heatmap rate only
            return browser.close()
        srv = Running(Session(providers={"mnist": mnist_provider(a.data_dir)}).start())
        try:
            page = open_page(browser, srv, MNIST)
            wait(page, "() => JSON.stringify(window.nkPlayground.frame.layers) === '[256,128,10]'")
            cli, web = [], []
            for k in range(a.rounds):
                order = [("cli", lambda: cli.append(cli_steps_per_s(a.data_dir))),
                         ("page", lambda: web.append(page_steps_per_s(page, srv, a.seconds)))]  # fmt: skip
                for _, run in order if k % 2 == 0 else order[::-1]:
                    run()
                print(f"round {k + 1}: neuronkit train {cli[-1]:.1f} steps/s, page {web[-1]:.1f} steps/s "
                      f"({web[-1] / cli[-1]:.1%}); load average {os.getloadavg()[0]:.1f}")  # fmt: skip
            ratios = [w / c for w, c in zip(web, cli)]
            print(f"MNIST 784-256-128-10, batch 128: median neuronkit train {statistics.median(cli):.1f} steps/s, "
                  f"page {statistics.median(web):.1f} steps/s; page / train: median of rounds "
                  f"{statistics.median(ratios):.1%} (target >= 90 %)")  # fmt: skip
        finally:
            srv.stop()
        browser.close()


if __name__ == "__main__":
    main_()
