"""Browser latency: a change in the pipeline builder to the new image painted, in Chromium.

For each frame size (1024², 2048², 4096² synthetic NIRCam-like frames) the
script serves two notebooks from JupyterLab on 127.0.0.1 and drives them in
headless Debian Chromium with Playwright:

* the **reference** (``notebooks/latency_reference.ipynb``): a slider that
  swaps a precomputed full-resolution PNG of the frame into a bqplot
  ``Image`` (nothing is computed), the case the issue names ("Debian's
  Chromium shows a full-resolution 2048² PNG 340 ms after a key press even
  when nothing is computed");
* the **product** (``notebooks/latency_builder.ipynb``): a
  ``PipelineBuilder`` with background subtraction, noise reduction and
  source detection. Display changes: interval, stretch and colormap through
  the builder's dropdowns, zoom through the view's buttons, pan by dragging
  the figure 10 % of its width. Processing changes: one key press
  (ArrowRight) on the ``box_size``, noise ``sigma`` and ``threshold_sigma``
  sliders.

Each change is timed from the DOM event that sends it to the kernel (key
press, dropdown change, button click, last mouse move of a drag) to the new
image painted, as the browser reports it (Element Timing's ``renderTime``
of the new image; markers: the frame after they moved). For processing
changes both the first new image (the reduced-resolution preview) and the
final one (full resolution, after the panels leave "running"/"preview")
are timed. The notebooks also log, in the kernel, when each change arrived
and each image was sent, which splits the time into kernel and browser
parts. ``benchmarks/README.md`` explains the method.

Run::

    python benchmarks/bench_browser_latency.py                 # 1024, 2048, 4096; 12 changes each
    python benchmarks/bench_browser_latency.py --sizes 2048 --changes 10

Results: a table on stdout and ``benchmarks/results/browser_latency-*.json``.
Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``) and the
``playwright`` Python package. Takes about 25 minutes on 2 busy cores (most
of it the 4096² processing changes).
"""

import argparse
import re
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _browser as B  # noqa: E402

MAIN_IMAGE = ".jw-image-figure image[href^='blob:']"
#: the source markers: a picture over the view, the figure's third image (after the
#: image and the segmentation overlay)
MARKERS = (".jw-image-figure", 2)
STAGE_STATUS = "jw-stage-status"  # class of the panels' status lines
BUSY = "running|preview"
REF_IMAGE = ".jw-ref-figure image[href^='blob:']"
REF_SLIDER = ".jw-ref-slider .noUi-handle"

DISPLAY_KINDS = ("interval", "stretch", "colormap", "zoom", "pan")
#: processing change -> (stage, parameter, stage index in the notebook's chain)
PROCESSING = {
    "box_size": ("background_subtraction", "box_size", 0),
    "noise_sigma": ("noise_reduction", "sigma", 1),
    "threshold_sigma": ("source_detection", "threshold_sigma", 2),
}
#: Targets of the issue (ms): display changes at 2048², preview of a processing change.
DISPLAY_TARGET_MS = 100
PREVIEW_TARGET_MS = 150
FINAL_TARGET_FACTOR = 2.0


# ------------------------------------------------------------------ frames


def prepare_frames(sizes):
    """Synthetic frames (seed 1) written once to the jwst-widgets cache; their paths."""
    from jwst_widgets import datasets

    folder = Path(datasets.cache_dir()) / "bench_browser"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for n in sizes:
        path = folder / f"nircam_like_{n}_seed1_cal.fits"
        if not path.exists():
            t = time.perf_counter()
            datasets.nircam_like(shape=(n, n), seed=1).write(str(path))
            print(f"generated {path.name} in {time.perf_counter() - t:.0f} s", flush=True)
        paths[n] = path
    return paths


# ------------------------------------------------------------------ kernel log


def kernel_breakdown(report, *, last_change=False):
    """Kernel-side intervals of one change from the notebook's log (ms)."""
    log = report.get("log", [])
    changes = [e for e in log if e["what"] == "change"]
    renders = [e for e in log if e["what"] == "render"]
    out = {"n_renders": len(renders), "n_kernel_changes": len(changes)}
    if not changes:
        return out
    t = changes[-1]["t"] if last_change else changes[0]["t"]
    out["kernel_value"] = changes[-1].get("value")
    # the whole log, compact: (what, ms from the first change, control or PNG bytes)
    out["kernel_log"] = [(e["what"], round((e["t"] - changes[0]["t"]) * 1000, 1),
                          e.get("control", e.get("png", e.get("factor")))) for e in log]
    after = [r for r in renders if r["t"] >= t]
    if after:
        out.update(
            kernel_first_sent_ms=round((after[0]["t"] - t) * 1000, 1),
            kernel_final_sent_ms=round((after[-1]["t"] - t) * 1000, 1),
            png_kib=round(after[-1]["png"] / 1024, 1),
            n_preview_renders=sum(bool(r.get("preview")) for r in after),
        )
    shown = [e for e in log if e["what"] == "rendered" and e["t"] >= t]
    if shown:  # the product's notebook also says what size the last image had
        out.update(png_size=[shown[-1]["width"], shown[-1]["height"]],
                   factor=shown[-1]["factor"])
    stages = report.get("stages") or []
    if stages:
        out["stages_rerun_s"] = {s["name"]: round(s["seconds"], 3)
                                 for s in stages if not s["cached"]}
        out["chain_rerun_ms"] = round(1000 * sum(s["seconds"] for s in stages
                                                 if not s["cached"]), 1)
    return out


# ------------------------------------------------------------------ trials


#: A fingerprint of the builder's catalog (its positions), printed by the kernel.
_CATALOG_KEY = ("import hashlib, numpy\n_c = builder.result.catalog\n"
                "print(hashlib.sha1(numpy.asarray(_c['x_centroid'], float).tobytes())"
                ".hexdigest() if _c is not None and len(_c) else '')")


def run_series(page, probe, name, count, warmup, action, *, triggers, need, quiet_ms,
               timeout_s, report=True, last_change=False, builder=True, markers_only=False):
    """``warmup + count`` changes, one at a time; each waits until painted and quiet.

    With ``builder``, a change is over only once the builder says it is idle
    (its view shows the latest change) and the page has been quiet again:
    the panels may say "ran in" seconds before the view's new image is sent.
    With ``markers_only`` (a threshold), a change that finds the same sources
    changes nothing on screen: it is kept out of the figures ("unchanged").
    """
    rows = []
    before = B.kernel_exec(page, _CATALOG_KEY).strip() if markers_only else None
    for i in range(warmup + count):
        probe.arm(triggers)
        row = {"series": name, "i": i, "warmup": i < warmup}
        try:
            row["value"] = action(i)
            probe.disarm()
            if markers_only:
                B.wait_builder_idle(page, timeout_s)
                after = B.kernel_exec(page, _CATALOG_KEY).strip()
                if after == before:
                    row["unchanged"] = True
                    print(f"  {name} #{i}: the same sources, nothing to paint", flush=True)
                    B.kernel_exec(page, "_bench_report()")  # its log is not the next one's
                    rows.append(row)
                    continue
                before = after
            st = probe.wait(need=need, quiet_ms=quiet_ms, timeout_s=timeout_s)
            if builder:
                B.wait_builder_idle(page, timeout_s)
                st = probe.wait(need=need, quiet_ms=1000, timeout_s=timeout_s)
            row.update(B.analyse(st))
        except B.TrialTimeout as exc:
            row["error"] = str(exc)[:500]
            print(f"  {name} #{i}: {exc}", flush=True)
        if report:
            row.update(kernel_breakdown(B.kernel_exec(page, "_bench_report()", parse_json=True),
                                        last_change=last_change))
            if row.get("kernel_value") is not None and name in PROCESSING:
                row["value"] = row["kernel_value"]  # the text box may not have caught up yet
        rows.append(row)
        shown = row.get("final_image_ms", row.get("final_any_ms"))
        print(f"  {name} #{i} {row.get('value')!s:>10}: first "
              f"{row.get('first_image_ms', row.get('first_any_ms'))} ms, final {shown} ms "
              f"(kernel sent at {row.get('kernel_final_sent_ms')} ms)", flush=True)
    return rows


def dropdown(page, label):
    has = page.locator("label", has_text=re.compile(rf"^{re.escape(label)}$"))
    return page.locator(".jw-pipeline-builder .widget-dropdown", has=has).first.locator("select")


def cycle_action(select):
    """Select, in turn, every option but the current one (then the first again...)."""
    options = select.locator("option").all_inner_texts()
    start = select.evaluate("(s) => s.options[s.selectedIndex].text")
    order = [o for o in options if o != start] + [start]

    def act(i):
        value = order[i % len(order)]
        select.select_option(label=value)
        return value
    return act, start


def wait_settled(page, probe, timeout_s=300, quiet_ms=1000):
    """Wait until the builder is idle, nothing moves and no panel is busy."""
    B.wait_builder_idle(page, timeout_s)
    probe.arm([])
    page.evaluate("() => { window.__jwb.t0 = performance.now(); }")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = probe.state()
        busy = re.search(BUSY, st["status"] or "")
        last = max([e.get("tPainted", e["tSeen"]) for e in st["events"]] + [st["t0"]])
        if not busy and st["now"] - last > quiet_ms:
            return
        page.wait_for_timeout(100)
    raise B.TrialTimeout(f"the builder did not settle within {timeout_s} s")


def open_bench_notebook(page, lab, notebook, name, path, size, figure):
    """Serve ``notebooks/<notebook>.ipynb`` for this frame, run it, show its figure."""
    rel = lab.add(B.NOTEBOOKS / f"{notebook}.ipynb", f"{name}.ipynb", PATH=str(path),
                  SIZE=size)
    B.open_notebook(page, lab.server, rel)
    B.run_all(page, timeout=600_000)
    shown = page.locator(figure).first
    shown.wait_for(timeout=120_000)
    shown.scroll_into_view_if_needed()
    return shown


def bench_reference(browser, lab, size, path, count, warmup):
    page = B.new_page(browser)
    try:
        open_bench_notebook(page, lab, "latency_reference", f"reference_{size}", path, size,
                            ".jw-ref-figure")
        probe = B.Probe(page, image=REF_IMAGE)
        page.locator(REF_IMAGE).first.wait_for(timeout=120_000)
        page.wait_for_timeout(1500)
        B.kernel_exec(page, "_bench_report()")
        handle = page.locator(REF_SLIDER).first

        def press(i):
            handle.press("ArrowRight")
            return i + 1
        rows = run_series(page, probe, "reference", count, warmup, press, triggers=["keydown"],
                          need="image", quiet_ms=600, timeout_s=120, builder=False)
        return rows, B.page_problems(page)
    finally:
        page.context.close()
        lab.shutdown_kernels()


def bench_product(browser, lab, size, path, count, warmup, kinds):
    page = B.new_page(browser)
    out = {"rows": [], "compute": {}}
    try:
        figure = open_bench_notebook(page, lab, "latency_builder", f"builder_{size}", path,
                                     size, ".jw-image-figure")
        probe = B.Probe(page, image=MAIN_IMAGE, markers=MARKERS, status=STAGE_STATUS, busy=BUSY)
        page.locator(MAIN_IMAGE).first.wait_for(timeout=120_000)
        wait_settled(page, probe, timeout_s=600)
        out["aladin_elements"] = page.locator("[class*='aladin']").count()
        B.kernel_exec(page, "_bench_report()")
        display = dict(triggers=None, need="image", quiet_ms=600, timeout_s=120)

        for kind in ("interval", "stretch", "colormap"):
            if kind not in kinds:
                continue
            select = dropdown(page, kind)
            act, start = cycle_action(select)
            out["rows"] += run_series(page, probe, kind, count, warmup, act,
                                      **{**display, "triggers": ["change"]})
            select.select_option(label=start)  # back to the default, not timed
            wait_settled(page, probe)
            B.kernel_exec(page, "_bench_report()")

        if "zoom" in kinds:
            def zoom(i):
                title = "Zoom in" if i % 2 == 0 else "Zoom out"
                page.locator(f".jw-image-view button[title='{title}']").first.click()
                return title
            out["rows"] += run_series(page, probe, "zoom", count, warmup, zoom,
                                      **{**display, "triggers": ["click"]})
            page.locator(".jw-image-view button[title='Reset the view to the whole image']") \
                .first.click()
            wait_settled(page, probe)
            B.kernel_exec(page, "_bench_report()")

        if "pan" in kinds:
            box = figure.bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            step = 0.1 * (box["width"] - 54)  # 10 % of the plot area's width

            def pan(i):
                sign = -1 if i % 2 == 0 else 1
                page.mouse.move(cx, cy)
                page.mouse.down()
                page.mouse.move(cx + sign * step, cy, steps=5)
                page.mouse.up()
                return "left" if sign < 0 else "right"
            out["rows"] += run_series(page, probe, "pan", count, warmup, pan,
                                      **{**display, "triggers": ["mousemove"], "quiet_ms": 800},
                                      last_change=True)
            page.locator(".jw-image-view button[title='Reset the view to the whole image']") \
                .first.click()
            wait_settled(page, probe)
            B.kernel_exec(page, "_bench_report()")

        for kind, (stage, param, index) in PROCESSING.items():
            if kind not in kinds:
                continue
            handle = page.locator(f".jw-stage-{stage} .jw-param-{param} .noUi-handle").first
            text = page.locator(f".jw-stage-{stage} .jw-param-{param} input[type=text]").first

            def press(i, handle=handle, text=text):
                handle.press("ArrowRight")
                return text.input_value()
            out["rows"] += run_series(page, probe, kind, count, warmup, press,
                                      triggers=["keydown"], need="any", quiet_ms=1000,
                                      timeout_s=600,
                                      markers_only=kind == "threshold_sigma")
            wait_settled(page, probe)
            compute = B.kernel_exec(page, f"_bench_compute({index})", parse_json=True)
            out["compute"][kind] = compute
            print(f"  {kind}: headless compute of stages {index}.. "
                  f"{[round(s * 1000) for s in compute['seconds']]} ms", flush=True)
            B.kernel_exec(page, "_bench_report()")
        out["problems"] = B.page_problems(page)
        return out
    finally:
        page.context.close()
        lab.shutdown_kernels()


# ------------------------------------------------------------------ report


def measured(rows, series):
    return [r for r in rows if r["series"] == series and not r["warmup"] and "error" not in r
            and not r.get("unchanged")]


def summarise(size, ref_rows, product):
    """Per-series summaries (ms) and ratios against the reference."""
    ref = measured(ref_rows, "reference")
    ref_final = B.summary([r.get("final_image_ms") for r in ref])
    out = {"reference": {
        "painted_ms": ref_final,
        "kernel_sent_ms": B.summary([r.get("kernel_final_sent_ms") for r in ref]),
        "arrival_ms": B.summary([r.get("final_image_seen_ms") for r in ref]),
        "arrival_to_painted_ms": B.summary([r.get("final_image_seen_to_painted_ms")
                                            for r in ref]),
        "png_kib": B.summary([r.get("png_kib") for r in ref]),
        "errors": sum(1 for r in ref_rows if "error" in r)}}
    for kind in (*DISPLAY_KINDS, *PROCESSING):
        rows = measured(product["rows"], kind)
        if not rows and not any(r["series"] == kind for r in product["rows"]):
            continue
        s = {
            "n": len(rows),
            "errors": sum(1 for r in product["rows"] if r["series"] == kind and "error" in r),
            "first_image_ms": B.summary([r.get("first_image_ms") for r in rows]),
            "final_image_ms": B.summary([r.get("final_image_ms") for r in rows]),
            "first_any_ms": B.summary([r.get("first_any_ms") for r in rows]),
            "final_any_ms": B.summary([r.get("final_any_ms") for r in rows]),
            "arrival_ms": B.summary([r.get("final_image_seen_ms") for r in rows]),
            "arrival_to_painted_ms": B.summary([r.get("final_image_seen_to_painted_ms")
                                                for r in rows]),
            "kernel_first_sent_ms": B.summary([r.get("kernel_first_sent_ms") for r in rows]),
            "kernel_final_sent_ms": B.summary([r.get("kernel_final_sent_ms") for r in rows]),
            "png_kib": B.summary([r.get("png_kib") for r in rows]),
            "previews": sum(1 for r in rows if r.get("n_images", 0) > 1),
        }
        if kind in PROCESSING:
            compute = product["compute"].get(kind)
            if compute:
                c = B.summary([1000 * x for x in compute["seconds"]])
                s["compute_ms"] = c
                final = s["final_any_ms"]["median"]
                if final is not None and c["median"]:
                    s["final_over_compute"] = round(final / c["median"], 2)
            s["chain_rerun_ms"] = B.summary([r.get("chain_rerun_ms") for r in rows])
        else:
            ours = s["final_image_ms"]["median"]
            if ours and ref_final["median"]:
                s["reference_over_ours"] = round(ref_final["median"] / ours, 2)
        out[kind] = s
    return out


def print_report(info, sizes, summaries):
    print()
    print("=" * 100)
    print("Browser latency: change -> new image painted (ms; median [25th-75th percentile])")
    print(B.describe_machine(info))
    print("JupyterLab 4, headless Chromium, Element Timing renderTime of the new image; "
          "kernel = change arrived -> image sent (kernel clock)")
    print()
    for size in sizes:
        s = summaries[size]
        ref = s["reference"]
        print(f"--- {size} x {size} ---")
        headers = ["change", "n", "first painted", "final painted", "kernel sent",
                   "arrival->painted", "PNG KiB", "vs reference", "target"]
        rows = [["reference: full-res PNG swap", ref["painted_ms"]["n"], "",
                 B.fmt_ms(ref["painted_ms"]), B.fmt_ms(ref["kernel_sent_ms"]),
                 B.fmt_ms(ref["arrival_to_painted_ms"]), B.fmt_ms(ref["png_kib"], spread=False),
                 "1.00x", ""]]
        for kind in DISPLAY_KINDS:
            if kind not in s:
                continue
            k = s[kind]
            med = k["final_image_ms"]["median"]
            verdict = "" if med is None else (
                f"<= {DISPLAY_TARGET_MS}: {'yes' if med <= DISPLAY_TARGET_MS else 'NO'}")
            ratio = k.get("reference_over_ours")
            rows.append([kind, k["n"], B.fmt_ms(k["first_image_ms"]),
                         B.fmt_ms(k["final_image_ms"]), B.fmt_ms(k["kernel_final_sent_ms"]),
                         B.fmt_ms(k["arrival_to_painted_ms"]),
                         B.fmt_ms(k["png_kib"], spread=False),
                         f"{ratio:.2f}x faster" if ratio else "-", verdict])
        for kind in PROCESSING:
            if kind not in s:
                continue
            k = s[kind]
            first = k["first_any_ms"]["median"]
            ratio = k.get("final_over_compute")
            verdict = []
            if first is not None:
                verdict.append(f"preview <= {PREVIEW_TARGET_MS}: "
                               f"{'yes' if first <= PREVIEW_TARGET_MS else 'NO'}")
            if ratio is not None:
                verdict.append(f"final/compute {ratio:.2f} <= {FINAL_TARGET_FACTOR:g}: "
                               f"{'yes' if ratio <= FINAL_TARGET_FACTOR else 'NO'}")
            rows.append([kind, k["n"], B.fmt_ms(k["first_any_ms"]),
                         B.fmt_ms(k["final_any_ms"]), B.fmt_ms(k["kernel_final_sent_ms"]),
                         B.fmt_ms(k["arrival_to_painted_ms"]),
                         B.fmt_ms(k["png_kib"], spread=False),
                         f"compute {B.fmt_ms(k.get('compute_ms'), spread=False)}",
                         "; ".join(verdict)])
        B.print_table(rows, headers)
        print()
    print("first painted: the first new image (for processing changes, the first new image "
          "or markers: the preview); final painted: the last one (full resolution).")
    print("kernel sent: from the change arriving in the kernel to the (last) image leaving it; "
          "arrival->painted: from the image element's href changing to its paint.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--changes", type=int, default=12,
                        help="measured changes per kind (after --warmup ones)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the reference (no ratios; for trying out a change)")
    parser.add_argument("--kinds", nargs="+", default=[*DISPLAY_KINDS, *PROCESSING],
                        choices=[*DISPLAY_KINDS, *PROCESSING])
    args = parser.parse_args(argv)
    if args.changes < 1:
        parser.error("--changes must be at least 1")

    from playwright.sync_api import sync_playwright

    info = B.machine_info()
    print(B.describe_machine(info), flush=True)
    frames = prepare_frames(args.sizes)
    results = {"machine": info, "args": vars(args), "sizes": {}, "summary": {}}
    t_start = time.monotonic()
    with sync_playwright() as pw, B.Lab() as lab:
        browser = B.launch_browser(pw)
        info["chromium"] = browser.version
        info["jupyterlab_startup_s"] = round(lab.startup_seconds, 2)
        try:
            for size in args.sizes:
                print(f"\n=== {size} x {size} (load average {B.load_average()}) ===", flush=True)
                entry = {"load_average_before": B.load_average()}
                try:
                    ref_rows, ref_problems = [], []
                    if not args.no_reference:
                        ref_rows, ref_problems = bench_reference(
                            browser, lab, size, frames[size], args.changes, args.warmup)
                    product = bench_product(browser, lab, size, frames[size], args.changes,
                                            args.warmup, set(args.kinds))
                except Exception:  # keep the sizes already measured
                    entry["error"] = traceback.format_exc()
                    print(entry["error"], flush=True)
                    results["sizes"][size] = entry
                    continue
                entry.update(reference=ref_rows, reference_problems=ref_problems, **product,
                             load_average_after=B.load_average())
                results["sizes"][size] = entry
                results["summary"][size] = summarise(size, ref_rows, product)
                B.save_results("browser_latency-partial", results, stamp=False)  # if a later size fails
        finally:
            browser.close()
    info["load_average_end"] = B.load_average()
    info["duration_s"] = round(time.monotonic() - t_start)
    done = [s for s in args.sizes if s in results["summary"]]
    print_report(info, done, results["summary"])
    for size in args.sizes:
        entry = results["sizes"].get(size, {})
        problems = entry.get("problems", []) + entry.get("reference_problems", [])
        if problems:
            print(f"{size}: page problems: {problems[:5]}")
    path = B.save_results("browser_latency", results)
    print(f"\nresults: {path}")
    return 0 if len(done) == len(args.sizes) else 1


if __name__ == "__main__":
    sys.exit(main())
