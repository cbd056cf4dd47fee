"""The command line: ``jwst-widgets algorithms`` and ``jwst-widgets run``."""

import argparse
import json
import sys

__all__ = ["main"]

EXIT_OK, EXIT_FAILED_FILES, EXIT_BAD_INPUT = 0, 1, 2


def _cmd_algorithms(args):
    from .pipeline import algorithms

    registry = algorithms()
    if args.json:
        print(json.dumps({"algorithms": registry}, indent=2))
        return EXIT_OK
    for stage in registry:
        print(f"{stage['name']}  [{stage['category']}]  {stage['description']}")
        for name, p in stage["parameters"].items():
            extra = []
            if "enum" in p:
                extra.append("one of " + ", ".join(map(str, p["enum"])))
            if "min" in p or "max" in p:
                extra.append(f"{p.get('min', '')}..{p.get('max', '')}")
            if p.get("unit"):
                extra.append(p["unit"])
            print(f"    {name:<20} {p['type']:<8} default {p['default']!r:<12} {'; '.join(extra)}")
        print()
    return EXIT_OK


def _cmd_run(args):
    import os

    from .errors import InputError
    from .pipeline.batch import SUMMARY_NAME, expand_inputs, run_batch

    try:
        files = expand_inputs(args.files)
        summary = run_batch(args.recipe, files, args.outdir, scheduler=args.scheduler,
                            workers=args.workers, overwrite=args.overwrite,
                            progress=not args.quiet)
    except InputError as exc:
        print(f"jwst-widgets run: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"jwst-widgets run: interrupted; the files not finished are listed as failed in "
              f"{os.path.join(args.outdir, SUMMARY_NAME)}. Run the same command again to "
              "resume: finished files are skipped.", file=sys.stderr)
        return 130  # what a shell reports for Ctrl-C
    counts = {s: int((summary["status"] == s).sum()) for s in ("done", "skipped", "failed")}
    print(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed "
          f"-> {os.path.join(args.outdir, SUMMARY_NAME)}")
    for row in summary:
        if row["status"] == "failed":
            print(f"  failed: {row['file']}: {row['message']}", file=sys.stderr)
    return EXIT_FAILED_FILES if counts["failed"] else EXIT_OK


def build_parser():
    parser = argparse.ArgumentParser(
        prog="jwst-widgets",
        description="Interactive and batch analysis of JWST images.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("algorithms", help="list the processing stages and their parameters")
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    p.set_defaults(func=_cmd_algorithms)

    p = sub.add_parser("run", help="run a recipe over FITS files (on Dask)")
    p.add_argument("recipe", help="a recipe JSON file (exported from the pipeline builder)")
    p.add_argument("files", nargs="+", help="FITS files, directories or glob patterns")
    p.add_argument("-o", "--outdir", required=True, help="directory for the outputs")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--workers", type=int, default=None,
                       help="worker processes of a local Dask cluster (default: one per core)")
    group.add_argument("--scheduler", default=None,
                       help="address of a running Dask scheduler (tcp://host:port)")
    p.add_argument("--overwrite", action="store_true", help="redo files whose outputs exist")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
