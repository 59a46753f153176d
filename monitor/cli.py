"""The `synthdrift` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import orjson
import yaml

from monitor import __version__, example
from monitor.check import check, reached, render_text
from monitor.config import ConfigError, drift_settings, load_yaml
from monitor.profile import Profile, ProfileError, ProfileSettings, build, summary
from monitor.spec import Spec, SpecError, infer
from monitor.tables import TableError, read_raw

EXIT_OK, EXIT_FAILED_GATE, EXIT_USAGE = 0, 1, 2
PROFILE_DEFAULTS = ProfileSettings()


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.run(args)
    except (SpecError, ProfileError, TableError, ConfigError) as exc:
        print(f"synthdrift: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthdrift", description="Drift monitoring for models trained on "
                                     "synthetic data: compare live traffic with the synthetic training profile.")
    parser.add_argument("--version", action="version", version=f"synthdrift {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND")

    spec = commands.add_parser("spec", help="feature specs").add_subparsers(metavar="ACTION")
    infer_cmd = spec.add_parser("infer", help="print a spec guessed from a training table, to edit")
    infer_cmd.add_argument("--input", required=True, type=Path, help="training table (.csv, .jsonl, .parquet)")
    infer_cmd.add_argument("--model", default="my-model", help="model name to put in the spec")
    infer_cmd.set_defaults(run=_spec_infer)

    profile = commands.add_parser("profile", help="synthetic training profiles").add_subparsers(metavar="ACTION")
    build_cmd = profile.add_parser("build", help="profile a synthetic training table")
    build_cmd.add_argument("--spec", required=True, type=Path)
    build_cmd.add_argument("--input", required=True, type=Path, help="training table (.csv, .jsonl, .parquet)")
    build_cmd.add_argument("--output", required=True, type=Path)
    build_cmd.add_argument("--top-categories", type=int, default=PROFILE_DEFAULTS.top_categories)
    build_cmd.add_argument("--vocabulary-size", type=int, default=PROFILE_DEFAULTS.vocabulary_size)
    build_cmd.add_argument("--min-segment-rows", type=int, default=PROFILE_DEFAULTS.min_segment_rows,
                           help="segment values with fewer training rows get no profile of their own")
    build_cmd.add_argument("--sample-size", type=int, default=PROFILE_DEFAULTS.sample_size)
    build_cmd.set_defaults(run=_profile_build)
    show_cmd = profile.add_parser("show", help="print a readable summary of a profile")
    show_cmd.add_argument("profile", type=Path)
    show_cmd.set_defaults(run=_profile_show)

    check_cmd = commands.add_parser("check", help="replay a file of live events against a profile")
    check_cmd.add_argument("--profile", required=True, type=Path)
    check_cmd.add_argument("--input", required=True, type=Path, help="live events, one JSON object per line")
    check_cmd.add_argument("--window", type=_positive, default=5000, help="events per window (default 5000)")
    check_cmd.add_argument("--format", choices=("text", "json"), default="text")
    check_cmd.add_argument("--config", type=Path, help="monitor.yaml: thresholds, false-alarm rate, detectors")
    check_cmd.add_argument("--fail-on", choices=("warning", "critical"),
                           help="exit 1 when any window reaches this severity (a CI gate)")
    check_cmd.set_defaults(run=_check)

    demo_cmd = commands.add_parser("demo", help="run the bundled support-ticket example end to end")
    demo_cmd.add_argument("--directory", type=Path, default=Path(".demo"), help="where to write its files")
    demo_cmd.set_defaults(run=_demo)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _spec_infer(args: argparse.Namespace) -> int:
    head = next(read_raw(args.input, chunk_rows=1000), {})
    columns = {name: list(values) for name, values in head.items()}
    print(yaml.safe_dump(infer(columns, args.model), sort_keys=False), end="")
    return EXIT_OK


def _profile_build(args: argparse.Namespace) -> int:
    spec = Spec.load(args.spec)
    settings = ProfileSettings(top_categories=args.top_categories, vocabulary_size=args.vocabulary_size,
                               min_segment_rows=args.min_segment_rows, sample_size=args.sample_size)
    profile = build(spec, args.input, settings, progress=_progress() if sys.stderr.isatty() else None)
    args.output.write_bytes(profile.to_json())
    print(f"wrote {args.output}: profile {profile.id}, {profile.meta['input']['rows']:,} rows, "
          f"{len(profile.channels)} channels, {len(profile.groups) - 1} segments")
    return EXIT_OK


def _progress() -> Callable[[int, int], None]:
    last = 0.0

    def show(step: int, rows: int) -> None:
        nonlocal last
        if time.monotonic() - last > 0.2:
            last = time.monotonic()
            print(f"\rpass {step}/2: {rows:,} rows", end="", file=sys.stderr, flush=True)

    return show


def _profile_show(args: argparse.Namespace) -> int:
    print(summary(Profile.load(args.profile)))
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    settings = drift_settings(load_yaml(args.config) if args.config else {})
    profile = Profile.load(args.profile)
    try:
        lines = args.input.open("rb")
    except OSError as exc:
        print(f"synthdrift: error: {args.input}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    with lines:
        report = check(profile, lines, window=args.window, settings=settings)
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(render_text(report))
    return EXIT_FAILED_GATE if reached(report, args.fail_on) else EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    print(f"writing the example (synthetic training tickets, live traffic) to {args.directory}/")
    paths = example.write(args.directory)
    profile = build(Spec.load(paths["spec"]), paths["train"])
    (args.directory / "profile.json").write_bytes(profile.to_json())
    print(summary(profile), end="\n\n")
    with paths["live"].open("rb") as lines:
        print(render_text(check(profile, lines, window=5000)))
    return EXIT_OK
