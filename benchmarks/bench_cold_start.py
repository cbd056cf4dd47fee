"""Cold start: the pipeline builder's cell run to its first image painted, in Chromium.

The cell a user runs::

    builder = PipelineBuilder("nircam_like", stages=[
        ("background_subtraction", {"box_size": 64, "filter_size": 3}),
        ("source_detection", {"threshold_sigma": 5.0, "fwhm": 2.0}),
    ])
    builder

on the bundled 2048² sample (``load_sample("nircam_like")``, generated
before the clock starts if it is not cached yet: the script says which), in
a fresh kernel each time, served by JupyterLab on 127.0.0.1 and shown in
headless Debian Chromium (``notebooks/cold_start.ipynb``). Two variants:

* **with import**: the import cell and the builder cell run together in a
  fresh kernel (``from jwst_widgets import PipelineBuilder`` included);
* **after import**: the import cell has run; only the builder cell is timed.

The clock starts when the cells are sent to run (in the page) and stops at
the first real image painted (Element Timing's ``renderTime``; the 1x1
placeholder the view starts with does not count). The time until the
chain's result is painted (panels no longer "running") is reported too, and
the import time, both in the kernel and in fresh interpreters
(``python -c "import jwst_widgets"``, and with the widget layer).

Run: ``python benchmarks/bench_cold_start.py [--repeats 5]``. Results: a
table on stdout and ``benchmarks/results/cold_start-*.json``.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _browser as B  # noqa: E402
from browser_page import error_outputs  # noqa: E402

MAIN_IMAGE = ".jw-image-figure image[href^='blob:']"
#: the source markers: a picture over the view, the figure's third image (after the
#: image and the segmentation overlay)
MARKERS = (".jw-image-figure", 2)
STAGE_STATUS = "jw-stage-status"  # class of the panels' status lines
BUSY = "running|preview"
TARGET_MS = 3000
#: From shared/notes/peer-latency.md (same kind of machine, not this run): cold show at 2048².
PEERS_MS = {"astrowidgets 0.6": 735, "jdaviz 5.0.5": 3515}
PEERS_IMPORT_S = {"astrowidgets 0.6": 1.1, "jdaviz 5.0.5": 5.9}

IMPORTS = {
    "import jwst_widgets": "import jwst_widgets",
    "from jwst_widgets import PipelineBuilder; import jwst_widgets.widgets":
        "from jwst_widgets import PipelineBuilder; import jwst_widgets.widgets",
}

_RUN = """([command, index]) => {
    const app = window.jupyterapp;
    const nb = app.shell.currentWidget;
    if (index !== null) nb.content.activeCellIndex = index;
    window.__jwb.t0 = performance.now();
    window.__jwb.t0type = command;
    app.commands.execute(command);  // resolves when the cells finished; not awaited
    return window.__jwb.t0;
}"""


def _code_cells():
    """Indices of the notebook's two code cells: the import, then the builder."""
    nb = json.loads((B.NOTEBOOKS / "cold_start.ipynb").read_text(encoding="utf-8"))
    cells = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    if len(cells) != 2:
        raise ValueError("cold_start.ipynb must have two code cells: the import, the builder")
    return cells


def import_times(repeats):
    """Seconds to import, each time in a fresh interpreter (its own start-up excluded)."""
    out = {}
    for label, stmt in IMPORTS.items():
        code = ("import time; t = time.perf_counter(); " + stmt +
                "; print(time.perf_counter() - t)")
        times = []
        for _ in range(repeats):
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            times.append(1000 * float(res.stdout.strip().splitlines()[-1]))
        out[label] = {"ms": B.summary(times), "all_ms": [round(t, 1) for t in times]}
    return out


def one_start(browser, lab, variant, rep):
    """Open the notebook in a fresh kernel, run the cell(s), time the first image painted."""
    lab.shutdown_kernels()
    page = B.new_page(browser)
    row = {"variant": variant, "rep": rep}
    try:
        rel = lab.add(B.NOTEBOOKS / "cold_start.ipynb", f"cold_{variant.replace(' ', '_')}_{rep}.ipynb")
        t = time.monotonic()
        B.open_notebook(page, lab.server, rel, timeout=120_000)
        row["kernel_start_s"] = round(time.monotonic() - t, 2)
        probe = B.Probe(page, image=MAIN_IMAGE, markers=MARKERS, status=STAGE_STATUS,
                        busy=BUSY)
        row["load_average"] = B.load_average()
        if variant == "after import":
            import_cell, builder_cell = _code_cells()
            page.evaluate(_RUN, ["notebook:run-cell", import_cell])
            B.wait_kernel_idle(page, timeout=120_000)
            page.wait_for_timeout(500)
            probe.arm([])
            page.evaluate(_RUN, ["notebook:run-cell", builder_cell])
        else:
            probe.arm([])
            page.evaluate(_RUN, ["notebook:run-all-cells", None])
        probe.wait(need="first_image", quiet_ms=1500, timeout_s=300)
        B.wait_builder_idle(page, 300)  # the chain's result is sent: wait for its paint
        st = probe.wait(need="first_image", quiet_ms=1000, timeout_s=300)
        t0 = st["t0"]
        images = [e for e in st["events"] if e["type"] == "image" and "tPainted" in e]
        real = [e for e in images if (e.get("w") or 0) > 1]
        painted = [e for e in st["events"] if e["type"] in ("image", "markers")
                   and "tPainted" in e]
        row.update(
            first_image_ms=round(real[0]["tPainted"] - t0, 1),
            first_image_arrival_ms=round(real[0]["tSeen"] - t0, 1),
            first_image_size=[real[0].get("w"), real[0].get("h")],
            chain_painted_ms=round(painted[-1]["tPainted"] - t0, 1),
            placeholder_painted=len(images) > len(real),
            painted_by=sorted({e.get("how") for e in images}),
        )
        errors = error_outputs(page)
        if errors:
            row["cell_errors"] = errors
        row.update(B.kernel_exec(page, (
            "import json; print(json.dumps({'kernel_import_s': globals().get('IMPORT_SECONDS'),"
            " 'kernel_construct_s': CONSTRUCT_SECONDS,"
            " 'chain_s': builder.result.seconds if builder.result else None,"
            " 'renders': builder.view.renders, 'image': builder.image.name}))"),
            parse_json=True))
        row["aladin_elements"] = page.locator("[class*='aladin']").count()
        row["problems"] = B.page_problems(page)
    except B.TrialTimeout as exc:
        row["error"] = str(exc)[:500]
    finally:
        page.context.close()
    print(f"  {variant} #{rep}: first image {row.get('first_image_ms')} ms, chain painted "
          f"{row.get('chain_painted_ms')} ms (kernel: import {row.get('kernel_import_s')} s, "
          f"constructor {row.get('kernel_construct_s')} s; load {row.get('load_average')})",
          flush=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="cold starts per variant")
    parser.add_argument("--import-repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from jwst_widgets import datasets

    info = B.machine_info()
    print(B.describe_machine(info), flush=True)
    before = set(os.listdir(datasets.cache_dir()))
    t = time.perf_counter()
    path = datasets.sample_path("nircam_like")
    cached = os.path.basename(path) in before
    info["sample"] = {"path": path, "was_cached": cached,
                      "prepared_s": round(time.perf_counter() - t, 2),
                      "mib": round(os.path.getsize(path) / 2**20, 1)}
    print(f"sample nircam_like: {path} ({info['sample']['mib']} MiB), "
          f"{'already cached' if cached else 'generated now, before the clock'}", flush=True)

    print("imports in fresh interpreters...", flush=True)
    imports = import_times(args.import_repeats)
    rows = []
    with sync_playwright() as pw, B.Lab() as lab:
        browser = B.launch_browser(pw)
        info["chromium"] = browser.version
        try:
            for rep in range(args.repeats):  # interleaved, so drifts in load hit both
                for variant in ("with import", "after import"):
                    rows.append(one_start(browser, lab, variant, rep))
        finally:
            browser.close()
    info["load_average_end"] = B.load_average()

    summary = {"imports": imports}
    for variant in ("with import", "after import"):
        ok = [r for r in rows if r["variant"] == variant and "error" not in r]
        summary[variant] = {
            "n": len(ok),
            "errors": sum(1 for r in rows if r["variant"] == variant and "error" in r),
            "first_image_ms": B.summary([r["first_image_ms"] for r in ok]),
            "chain_painted_ms": B.summary([r["chain_painted_ms"] for r in ok]),
            "kernel_import_ms": B.summary([1000 * r["kernel_import_s"] for r in ok
                                           if r.get("kernel_import_s") is not None
                                           and variant == "with import"]),
            "kernel_construct_ms": B.summary([1000 * r["kernel_construct_s"] for r in ok]),
            "kernel_start_s": B.summary([r["kernel_start_s"] for r in ok]),
        }

    print()
    print("=" * 100)
    print("Cold start: run the cell -> first image painted (ms; median [25th-75th percentile])")
    print(B.describe_machine(info))
    print(f"sample: nircam_like 2048x2048, {'cached before the run' if cached else 'generated before the clock started'}")
    print()
    headers = ["variant", "n", "first image painted", "chain result painted",
               "kernel: import", "kernel: constructor", f"target <= {TARGET_MS}"]
    table = []
    for variant in ("with import", "after import"):
        s = summary[variant]
        med = s["first_image_ms"]["median"]
        table.append([variant, s["n"], B.fmt_ms(s["first_image_ms"]),
                      B.fmt_ms(s["chain_painted_ms"]), B.fmt_ms(s["kernel_import_ms"]),
                      B.fmt_ms(s["kernel_construct_ms"]),
                      "-" if med is None else ("yes" if med <= TARGET_MS else "NO")])
    for name, ms in PEERS_MS.items():
        table.append([f"{name} (peer notes, not this run)", "", str(ms), "", "", "", ""])
    B.print_table(table, headers)
    print()
    B.print_table([[label, B.fmt_ms(v["ms"])] for label, v in imports.items()]
                  + [[f"{k} (peer notes, not this run)", f"{v * 1000:.0f}"]
                     for k, v in PEERS_IMPORT_S.items()],
                  ["import in a fresh interpreter", "ms"])
    problems = sorted({p for r in rows for p in r.get("problems", [])})
    if problems:
        print(f"\npage problems: {problems[:8]}")
    path = B.save_results("cold_start", {"machine": info, "args": vars(args),
                                         "summary": summary, "rows": rows})
    print(f"\nresults: {path}")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
