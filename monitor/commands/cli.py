"""The `synthdrift` command line.

Each command imports what it needs when it runs: NumPy, SciPy, River and the Kafka clients take
seconds to load, and `synthdrift --help` should not wait for them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

from monitor import __version__
from monitor.core.errors import UsageError

if TYPE_CHECKING:
    from monitor.config import KafkaSettings, Topics
    from monitor.core.profile import Profile

EXIT_OK, EXIT_FAILED_GATE, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.run(args)
    except UsageError as exc:
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
    build_cmd.add_argument("--top-categories", type=int, help="at most this many categories get a bin of their "
                           "own: the most frequent, until they carry 99%% of the rows (200)")
    build_cmd.add_argument("--vocabulary-size", type=int, help="words in the synthetic vocabulary (20,000)")
    build_cmd.add_argument("--min-segment-rows", type=int,
                           help="segment values with fewer training rows get no profile of their own (200)")
    build_cmd.add_argument("--sample-size", type=int, help="rows in the reservoir sample (5,000)")
    build_cmd.set_defaults(run=_profile_build)
    baseline_cmd = profile.add_parser("baseline", help="profile a table of organic rows with a synthetic profile's "
                                      "bins: the baseline that drift is judged against")
    baseline_cmd.add_argument("--profile", required=True, type=Path, help="the synthetic profile")
    baseline_cmd.add_argument("--input", required=True, type=Path, help="organic table (.csv, .jsonl, .parquet)")
    baseline_cmd.add_argument("--output", required=True, type=Path)
    baseline_cmd.set_defaults(run=_profile_baseline)
    show_cmd = profile.add_parser("show", help="print a readable summary of a profile")
    show_cmd.add_argument("profile", type=Path)
    show_cmd.set_defaults(run=_profile_show)

    check_cmd = commands.add_parser("check", help="replay a file of live events against a profile")
    check_cmd.add_argument("--profile", required=True, type=Path)
    check_cmd.add_argument("--input", required=True, type=Path, help="live events, one JSON object per line")
    check_cmd.add_argument("--window", type=_positive, default=5000, help="events per window (default 5000)")
    check_cmd.add_argument("--format", choices=("text", "json"), default="text")
    check_cmd.add_argument("--baseline", type=Path, help="an organic baseline of the profile: drift is judged "
                           "against it, and the reality gap against the profile")
    check_cmd.add_argument("--config", type=Path, help="monitor.yaml: thresholds, false-alarm rate, detectors")
    check_cmd.add_argument("--fail-on", choices=("warning", "critical"),
                           help="exit 1 when any window reaches this severity (a CI gate)")
    check_cmd.set_defaults(run=_check)

    report_cmd = commands.add_parser("report", help="write a self-contained HTML report of live events against a "
                                     "profile: distributions side by side, worst first")
    report_cmd.add_argument("--profile", required=True, type=Path)
    report_cmd.add_argument("--input", required=True, type=Path, help="live events, one JSON object per line")
    report_cmd.add_argument("--output", required=True, type=Path, help="the HTML file to write")
    report_cmd.add_argument("--window", type=_positive, default=5000, help="events per window (default 5000)")
    report_cmd.add_argument("--baseline", type=Path, help="an organic baseline of the profile: drift against it")
    report_cmd.add_argument("--config", type=Path, help="monitor.yaml: thresholds, false-alarm rate, detectors")
    report_cmd.set_defaults(run=_report)

    gap_cmd = commands.add_parser("gap", help="report where a table of real rows differs from the synthetic profile")
    gap_cmd.add_argument("--profile", required=True, type=Path)
    gap_cmd.add_argument("--input", required=True, type=Path, help="real rows (.csv, .jsonl, .parquet), as the "
                         "training table")
    gap_cmd.add_argument("--format", choices=("text", "json"), default="text")
    gap_cmd.add_argument("--all", action="store_true", help="every feature and segment, not only those that differ")
    gap_cmd.add_argument("--config", type=Path, help="monitor.yaml: thresholds, false-alarm rate")
    gap_cmd.set_defaults(run=_gap)

    contamination_cmd = commands.add_parser(
        "contamination", help="scan an evaluation set for what its training set already holds, and measure how "
        "much it flatters the model against organic labels")
    contamination_cmd.add_argument("--spec", required=True, type=Path)
    contamination_cmd.add_argument("--train", required=True, type=Path, help="training table (.csv, .jsonl, .parquet)")
    contamination_cmd.add_argument("--eval", required=True, type=Path, dest="evaluation", help="evaluation table")
    contamination_cmd.add_argument("--organic", type=Path, help="organic rows, labelled where possible: closeness, "
                                   "eval-likeness and the eval-flattery index need them")
    contamination_cmd.add_argument("--format", choices=("text", "json"), default="text")
    contamination_cmd.add_argument("--fail-on", choices=("warning", "critical"),
                                   help="exit 1 when any finding reaches this severity (a CI gate)")
    contamination_cmd.set_defaults(run=_contamination)

    baseline = commands.add_parser("baseline", help="the organic baseline a worker takes").add_subparsers(
        metavar="ACTION")
    renew_cmd = baseline.add_parser("renew", help="make the workers take their organic baseline again, from "
                                    "the next windows (`baseline: {events: N}`)")
    renew_cmd.add_argument("--config", type=Path, help="the workers' monitor.yaml")
    renew_cmd.set_defaults(run=_baseline_renew)

    worker_cmd = commands.add_parser("worker", help="run the streaming monitor on Kafka")
    worker_cmd.add_argument("--config", type=Path, help="monitor.yaml (SYNTHDRIFT_* variables override it)")
    worker_cmd.add_argument("--loglevel", default="warning", choices=("debug", "info", "warning", "error"))
    worker_cmd.set_defaults(run=_worker)

    broker_cmd = commands.add_parser("broker", help="run the embedded Kafka-compatible broker (tansu) for development")
    broker_cmd.add_argument("--port", type=int, default=9092)
    broker_cmd.set_defaults(run=_broker)

    replay_cmd = commands.add_parser("replay", help="produce a file of live events to the topics (backtests)")
    replay_cmd.add_argument("--input", required=True, type=Path, help="events, one JSON object per line")
    _kafka_arguments(replay_cmd)
    replay_cmd.set_defaults(run=_replay)

    simulate_cmd = commands.add_parser("simulate", help="produce traffic drawn from a profile, with injected drift")
    simulate_cmd.add_argument("--profile", required=True, type=Path)
    simulate_cmd.add_argument("--events", type=_positive, default=100_000)
    simulate_cmd.add_argument("--drift", action="append", default=[], metavar="RULE",
                              help="FIELD=shift:SDS | FIELD=scale:FACTOR | FIELD=new:VALUE:SHARE (repeatable)")
    simulate_cmd.add_argument("--at", type=int, default=0, help="the event from which the drift applies")
    simulate_cmd.add_argument("--seed", type=int, default=0)
    simulate_cmd.add_argument("--output", type=Path, help="write events to this file instead of Kafka")
    _kafka_arguments(simulate_cmd)
    simulate_cmd.set_defaults(run=_simulate)

    demo_cmd = commands.add_parser("demo", help="run the bundled support-ticket example end to end")
    demo_cmd.add_argument("--directory", type=Path, default=Path(".demo"), help="where to write its files")
    demo_cmd.add_argument("--events", type=_positive, default=60_000, help="production events to stream")
    demo_cmd.add_argument("--rate", type=float, default=3000.0, help="events per second")
    demo_cmd.set_defaults(run=_demo)
    return parser


def _kafka_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", type=Path, help="monitor.yaml, for the broker address and topic names")
    command.add_argument("--rate", type=float, default=0.0, help="events per second (default: as fast as possible)")


class InputError(UsageError, ValueError):
    """A file of events that cannot be opened."""


def _open_events(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _spec_infer(args: argparse.Namespace) -> int:
    import yaml

    from monitor.core.spec import infer
    from monitor.core.tables import read_raw

    head = next(read_raw(args.input, chunk_rows=1000), {})
    columns = {name: list(values) for name, values in head.items()}
    print(yaml.safe_dump(infer(columns, args.model), sort_keys=False), end="")
    return EXIT_OK


def _profile_build(args: argparse.Namespace) -> int:
    from monitor.core.profile import ProfileSettings, build
    from monitor.core.spec import Spec

    spec = Spec.load(args.spec)
    given = {name: getattr(args, name) for name in ("top_categories", "vocabulary_size", "min_segment_rows",
                                                    "sample_size")}
    settings = ProfileSettings(**{name: value for name, value in given.items() if value is not None})
    profile = build(spec, args.input, settings, progress=_progress() if sys.stderr.isatty() else None)
    args.output.write_bytes(profile.to_json())
    print(f"wrote {args.output}: profile {profile.id}, {profile.meta['input']['rows']:,} rows, "
          f"{len(profile.channels)} channels, {len(profile.groups) - 1} segments")
    return EXIT_OK


def _profile_baseline(args: argparse.Namespace) -> int:
    from monitor.core.profile import Profile, baseline

    organic = baseline(Profile.load(args.profile), args.input)
    args.output.write_bytes(organic.to_json())
    print(f"wrote {args.output}: organic baseline {organic.id} of profile {organic.meta['baseline_of']}, "
          f"{organic.meta['input']['rows']:,} rows")
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
    from monitor.core.profile import Profile, summary

    print(summary(Profile.load(args.profile)))
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    import orjson

    from monitor.commands.check import check, reached, render_text
    from monitor.config import drift_settings, load_yaml
    from monitor.core.profile import Profile

    _one_blas_thread()
    settings = drift_settings(load_yaml(args.config))
    profile = Profile.load(args.profile)
    organic = _load_baseline(profile, args.baseline)
    with _open_events(args.input) as lines:
        report = check(profile, lines, window=args.window, settings=settings, baseline=organic)
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(render_text(report))
    return EXIT_FAILED_GATE if reached(report, args.fail_on) else EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from monitor.commands.report import report_html
    from monitor.config import drift_settings, load_yaml
    from monitor.core.profile import Profile

    _one_blas_thread()
    settings = drift_settings(load_yaml(args.config))
    profile = Profile.load(args.profile)
    organic = _load_baseline(profile, args.baseline)
    with _open_events(args.input) as lines:
        page = report_html(profile, lines, args.input, window=args.window, settings=settings, baseline=organic)
    args.output.write_text(page, encoding="utf-8")
    print(f"wrote {args.output} ({len(page.encode()) / 1e6:.1f} MB)")
    return EXIT_OK


def _gap(args: argparse.Namespace) -> int:
    import orjson

    from monitor.config import drift_settings, load_yaml
    from monitor.core.columns import concatenate
    from monitor.core.gap import reality_gap, render_text
    from monitor.core.profile import Profile
    from monitor.core.tables import read_chunks

    settings = drift_settings(load_yaml(args.config))
    profile = Profile.load(args.profile)
    gaps = reality_gap(profile, concatenate(list(read_chunks(args.input, profile.spec))), settings)
    if args.format == "json":
        shown = [g.to_json() for g in gaps if args.all or g.result.severity]
        sys.stdout.buffer.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    else:
        print(render_text(gaps, everything=args.all))
    return EXIT_OK


def _contamination(args: argparse.Namespace) -> int:
    import orjson

    from monitor.commands.contamination import render_text, scan
    from monitor.core.severity import Severity
    from monitor.core.spec import Spec

    report = scan(Spec.load(args.spec), args.train, args.evaluation, args.organic)
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    else:
        print(render_text(report))
    failed = args.fail_on and Severity[report["worst"].upper()] >= Severity[args.fail_on.upper()]
    return EXIT_FAILED_GATE if failed else EXIT_OK


def _load_baseline(profile: Profile, path: Path | None) -> Profile | None:
    """The organic baseline at `path` (None without one); one clear line if it is not the profile's."""
    if path is None:
        return None
    from monitor.core.profile import Profile, check_baseline

    organic = Profile.load(path)
    check_baseline(profile, organic, path)
    return organic


def _stop_on_signals() -> None:
    """SIGTERM and SIGINT end a long command through its cleanup (what it started is stopped),
    also when a script started it in the background, where SIGINT comes ignored."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _demo(args: argparse.Namespace) -> int:
    from monitor.commands import demo

    _stop_on_signals()
    return demo.run(args.directory, events=args.events, rate=args.rate)


def _worker(args: argparse.Namespace) -> int:
    from monitor.config import worker_config
    from monitor.core.profile import Profile
    from monitor.stream.app import create_app
    from monitor.stream.logs import Worker
    from monitor.stream.topics import topics_to_create

    _one_blas_thread()
    config = worker_config(args.config)
    profile = Profile.load(config.profile)
    organic = _load_baseline(profile, config.baseline)
    _create_topics(config.kafka, topics_to_create(config, profile.spec))
    app = create_app(config, profile, organic)
    Worker(app, loglevel=args.loglevel, quiet=True).execute_from_commandline()
    return EXIT_OK


def _one_blas_thread() -> None:
    """The core multiplies small matrices (features by features, bins by blocks) for every slice;
    between two products OpenBLAS's helper threads spin. In a worker that took a whole core from
    the broker and the group's other workers (2.9 CPU-seconds in a 3.6 s run); in `check` (and
    `report`, which checks), 2.7 CPU-seconds against 1.4 for the same 1.4 s."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def _create_topics(kafka: KafkaSettings, topics: dict[str, int]) -> None:
    import logging

    from monitor.commands.broker import BrokerError
    from monitor.stream.topics import ensure_topics_sync

    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)  # the one line below says it all
    try:
        ensure_topics_sync(kafka.client_options(), topics)
    except Exception as exc:  # aiokafka raises several kinds for an unreachable broker
        raise BrokerError(f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc}") from None
    finally:
        client_log.setLevel(level)


def _broker(args: argparse.Namespace) -> int:
    from monitor.commands.broker import EmbeddedBroker

    _stop_on_signals()
    with EmbeddedBroker(port=args.port) as broker:
        print(f"tansu is listening on {broker.bootstrap_servers} (in memory); Ctrl-C stops it", flush=True)
        assert broker.process is not None
        broker.process.wait()
    return EXIT_OK


def _kafka(args: argparse.Namespace) -> tuple[KafkaSettings, Topics]:
    from monitor.config import Topics, kafka_settings, load_yaml

    data = load_yaml(args.config)
    return kafka_settings(data), Topics(**data.get("topics", {}))


def _replay(args: argparse.Namespace) -> int:
    import asyncio

    from monitor.commands.replay import produce

    kafka, topics = _kafka(args)
    with _open_events(args.input) as lines:
        sent = asyncio.run(produce(kafka.client_options(), topics, lines, rate=args.rate))
    print(f"sent {sent:,} events from {args.input} to {kafka.bootstrap_servers}")
    return EXIT_OK


def _baseline_renew(args: argparse.Namespace) -> int:
    import asyncio

    from aiokafka import AIOKafkaProducer

    from monitor.config import worker_config
    from monitor.core.profile import Profile
    from monitor.core.windows import RenewBaseline

    config = worker_config(args.config)
    model = Profile.load(config.profile).spec.model

    async def send() -> None:  # on the sketches topic, keyed by model: the merger reads it in order
        producer = AIOKafkaProducer(**config.kafka.client_options())
        await producer.start()
        try:
            await producer.send_and_wait(config.topics.sketches, RenewBaseline().to_bytes(), key=model.encode())
        finally:
            await producer.stop()

    asyncio.run(send())
    print(f"asked the workers of {model} to take their organic baseline again")
    return EXIT_OK


def _simulate(args: argparse.Namespace) -> int:
    import asyncio

    import orjson

    from monitor.commands.replay import Drift, produce, simulate
    from monitor.core.profile import Profile

    profile = Profile.load(args.profile)
    try:
        drifts = [Drift.parse(rule) for rule in args.drift]
    except ValueError as exc:
        print(f"synthdrift: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    lines = (orjson.dumps(e) + b"\n" for e in simulate(profile, args.events, drifts, args.at, args.seed))
    if args.output:
        with args.output.open("wb") as out:
            out.writelines(lines)
        print(f"wrote {args.events:,} events to {args.output}")
        return EXIT_OK
    kafka, topics = _kafka(args)
    sent = asyncio.run(produce(kafka.client_options(), topics, lines, rate=args.rate))
    print(f"sent {sent:,} simulated events to {kafka.bootstrap_servers}")
    return EXIT_OK
