"""Run every benchmark, one after the other, and keep each one's printout.

Run from the repository root with the project's Python (``make benchmarks``
does): ``python benchmarks/run_all.py [--quick] [--only stages detect ...]``.
Each script prints its figures and its ratios against the reference it
measures in the same run; this script adds nothing to them. It runs them in
sequence (never two at once: they would measure each other) and saves each
printout as ``benchmarks/results/<name>-<date>.txt`` next to the scripts'
JSON. ``--quick`` passes smaller sizes and fewer repeats (a check that every
script works, ~6 min instead of ~30; its figures are not the ones to quote).
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine, print_machine  # noqa: E402

#: name -> (script, full arguments, quick arguments), in the order they run.
SCRIPTS = {
    "interaction": ("bench_interaction.py", [], ["--sizes", "2048", "--repeats", "3"]),
    "stages": ("bench_stages.py", [], ["--sizes", "2048", "--repeats", "2",
                                        "--skip-photutils"]),
    "histeq_stats": ("bench_histeq_stats.py", [], ["--repeats", "3"]),
    "detect": ("bench_detect.py", [], ["--sizes", "1024", "--repeats", "2"]),
    "psf": ("bench_psf.py", [], ["--size", "1024", "--stars", "800"]),
    "mosaic": ("bench_mosaic.py", [], ["--size", "4000"]),
    "batch": ("bench_batch.py", [], ["--frames", "4", "--size", "1024"]),
    "cold_start": ("bench_cold_start.py", [], ["--repeats", "2", "--import-repeats", "2"]),
    "browser_latency": ("bench_browser_latency.py", [], ["--sizes", "1024", "--changes",
                                                          "4"]),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats: checks the scripts run")
    parser.add_argument("--only", nargs="+", choices=list(SCRIPTS), default=list(SCRIPTS),
                        metavar="NAME", help=f"a subset of: {', '.join(SCRIPTS)}")
    args = parser.parse_args(argv)

    print_machine(machine())
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M")
    failed = []
    for name in args.only:
        script, full, quick = SCRIPTS[name]
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        started = time.monotonic()
        log = results / f"{name}-{stamp}.txt"
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, cwd=HERE.parent, env=dict(os.environ))
            for line in proc.stdout:
                sys.stdout.write(line)
                out.write(line)
            code = proc.wait()
        print(f"=== {name}: exit {code} after {time.monotonic() - started:.0f} s; "
              f"printout in {log}", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
