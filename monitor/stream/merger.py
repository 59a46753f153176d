"""The merger: chunk partials from every worker -> windows -> verdicts, detections, metrics, alerts.

Partials (a few per second) reach one merger per model through the Faust topic `sketches`. The
merger keeps its state in a store (the Faust table `merger`, whose changelog lets whichever worker
takes over recover it): the newest version of every open chunk, the late count, and the last
closed window with the detector and alert states and window figures that judging it left (in one
write), and the offset of the last sketches message that changed it, all as data (JSON), never
pickle.

That offset is the merger's own: Faust may skip messages after a restart (it resumes fetching before
it seeks to the committed offsets, then clears the queue the fetched messages wait in), and it
commits past such a gap, so its committed offset says nothing of what was merged. The agent reads
back from the topic what lies between that offset and the message Faust hands it, and drops what
was merged already (see `next_offset`). A progress that closes no window changes nothing and is
not recorded (an idle reader sends one every flush): read back after a restart, it is old news.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from typing import Any, MutableMapping

import orjson

from monitor.config import WorkerConfig
from monitor.core.alerts import AlertStates, SliceStates
from monitor.core.analyzer import Analyzer
from monitor.core.gap import explain
from monitor.core.profile import Profile, taken_baseline
from monitor.core.severity import Severity
from monitor.core.sketch import Sketch
from monitor.core.slices import Slice
from monitor.core.types import FeatureResult, SourceResult
from monitor.core.windows import Assembler, Partial, Progress, RenewBaseline, Window, decode
from monitor.export.alerts import alert_event, slice_alert_event
from monitor.export.metrics import Metrics
from monitor.export.report import ReportData
from monitor.stream.topics import sources

log = logging.getLogger("synthdrift.merger")
RECENT_WINDOWS = 50  # verdicts kept for /status
HORIZON_WINDOWS = 12  # windows whose slice counts add up to the longer horizon's search


class Merger:
    """Merges partials into windows and judges each window as it closes."""

    def __init__(self, config: WorkerConfig, profile: Profile, analyzer: Analyzer, metrics: Metrics,
                 store: MutableMapping[str, Any], gap: Analyzer | None = None) -> None:
        """`analyzer` judges drift (against the profile, or its organic baseline); `gap`, given with
        a baseline, measures the reality gap against the synthetic profile."""
        self.config = config
        self.profile = profile
        self.analyzer = analyzer
        self.gap = gap
        self.synthetic = gap or analyzer  # what the reality gap is measured with
        # With `baseline: {events: N}`, the windows merged until the worker took its baseline.
        self.taking = config.baseline_events if gap is None else None
        self.taken: Sketch | None = None
        self.reality_gap: list[dict[str, Any]] = []  # the last window's flagged features against the profile
        self.metrics = metrics
        self.store = store
        self.partitions = dict.fromkeys(sources(config.topics, profile.spec), config.kafka.partitions)
        self.assembler: Assembler | None = None
        self.merged: dict[int, int] = {}  # per sketches partition, the last offset this process merged
        self.alert_states = AlertStates(config.alerts)
        self.slice_states = SliceStates(config.alerts)
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_WINDOWS)
        self.last: tuple[Sketch, list[FeatureResult], list[SourceResult], list[Slice]] | None = None  # /report
        # The slice counts of the last windows (this process's: rebuilt after a restart or takeover),
        # searched together: slices too small to be found in one window.
        self.horizon: deque[Sketch] = deque(maxlen=HORIZON_WINDOWS)
        self.horizon_slices: list[Slice] = []
        self._ranks = {g.name: i for i, g in enumerate(profile.groups[1:])}
        if gap is not None:
            self._record_standing(analyzer.profile)

    def reset(self) -> None:
        """After a rebalance: the state is reopened from the (recovered) store at the next message,
        and only the merger's owner reports windows."""
        self.assembler = None
        self.metrics.forget_windows()

    def next_offset(self, partition: int) -> int | None:
        """The offset after the last sketches message of `partition` merged: by this process, or
        one that changed the state (None before the first)."""
        merged = [int(o) for o in (self.store.get(f"merged:{partition}"), self.merged.get(partition)) if o is not None]
        return max(merged) + 1 if merged else None

    def receive(self, raw: bytes, now: float, partition: int | None = None,
                offset: int | None = None) -> list[dict[str, Any]]:
        """Takes one message of the sketches topic (a partial or a reader's progress), at `offset`
        of `partition`; returns the alert events of the windows it let close, to send."""
        assembler = self.assembler or self._open(now)
        message = decode(raw)
        if isinstance(message, Partial):
            late = assembler.add(message, now, raw)
            if late:
                self.metrics.events.labels("requests", "late").inc(late)
        elif isinstance(message, RenewBaseline):
            self._renew()
        else:
            assembler.progress(message, now)
        events: list[dict[str, Any]] = []

        def judge(window: Window) -> dict[str, Any]:
            events.extend(self._judge(window))
            return self._state()

        closed = assembler.close_ready(now, judge)
        if partition is not None and offset is not None:
            self.merged[partition] = offset
            if closed or not isinstance(message, Progress):  # written last: a recovery that has it has the rest
                self.store[f"merged:{partition}"] = offset
        return events

    def status(self) -> dict[str, Any]:
        """What /status shows: the last windows' verdicts, the events that came after their window
        closed, and the alert states."""
        late = self.assembler.late_events() if self.assembler else 0
        baseline = None
        if self.taking:
            baseline = {"events": self.taken.organic_events if self.taken else 0, "of": self.taking,
                        "taken": self.gap is not None}
        return {"profile": self.profile.id, "reference": self.metrics.reference, "baseline": baseline,
                "reality_gap": self.reality_gap, "windows": list(self.recent), "late": late,
                "horizon": {"windows": len(self.horizon), "events": sum(w.events for w in self.horizon),
                            "slices": [s.to_json() for s in self.horizon_slices]},
                "alerts": self.alert_states.to_json()}

    def report(self) -> ReportData | None:
        """The HTML report's data for the last window this worker judged (None before the first)."""
        if self.last is None:
            return None
        sketch, results, sources, departing = self.last
        windows = [{"label": str(w["key"]), "results": w["results"]} for w in self.recent]
        detections = [d for w in self.recent for d in w["detections"]]
        return ReportData(profile=self.analyzer.profile, settings=self.config.drift, sketch=sketch, results=results,
                          windows=windows, detections=detections,
                          coverage_gaps=[g.to_json() for g in self.analyzer.coverage_gaps(sketch)],
                          accuracy=[s.to_json() for s in sources], slices=[d.to_json() for d in departing],
                          title=f"synthdrift: {self.profile.spec.model}, last window",
                          source=f"window {windows[-1]['label']}, against the {self.metrics.reference} reference")

    def _open(self, now: float) -> Assembler:
        self.assembler = Assembler(self.store, self.analyzer.sketcher.empty(), self.partitions,
                                   self.config.window.idle_seconds, opened=now)
        state = self.assembler.judged_state()
        if self.taking and state.get("baseline"):
            self.taken = Sketch.from_json(orjson.loads(state["baseline"]))
            if self.taken.organic_events >= self.taking and self.gap is None:
                self._adopt(self.taken)
        detectors = state.get("detectors")
        if detectors is not None and not self.analyzer.detectors.restore(detectors):
            log.warning("the stored detector state is from another version or setting: detectors re-seeded "
                        "from the profile")
            self.analyzer.detectors = self.analyzer.seeded_detectors()
        self.alert_states = AlertStates(self.config.alerts, state.get("alerts"))
        self.slice_states = SliceStates(self.config.alerts, state.get("slice_alerts"))
        if not self.recent:  # a takeover or a restart: the verdicts the last owner reported
            self.recent.extend(state.get("windows") or [])
        return self.assembler

    def _state(self) -> dict[str, Any]:
        """What a successor needs after the window just judged: detector and alert states, and the
        windows' figures /status shows (without their details)."""
        details = ("results", "coverage_gaps", "detections", "alerts", "provenance", "flattery", "slices")
        windows = [{**w, **{key: [] for key in details}} for w in self.recent]  # the state stays small
        state = {"detectors": self.analyzer.detectors.to_json(), "alerts": self.alert_states.to_json(),
                 "slice_alerts": self.slice_states.to_json(), "windows": windows}
        if self.taken is not None:  # JSON text, as chunks are: one string, not a tree of objects
            state["baseline"] = orjson.dumps(self.taken.to_json(), option=orjson.OPT_SERIALIZE_NUMPY).decode()
        return state

    def _take(self, sketch: Sketch) -> None:
        """Adds a judged window to the baseline being taken; adopts it once it holds enough events."""
        assert self.taking
        self.taken = sketch if self.taken is None else self.taken.merge(sketch)
        if self.taken.organic_events >= self.taking:
            self._adopt(self.taken)
            log.info("organic baseline taken from %d events: drift is judged against it from now on",
                     self.taken.organic_events)

    def _adopt(self, traffic: Sketch) -> None:
        """From now on drift is judged against the baseline taken, the reality gap against the profile."""
        organic = taken_baseline(self.profile, traffic)
        self.gap, self.analyzer = self.synthetic, Analyzer(organic, self.config.drift)
        self.metrics.reference = "organic"
        self.metrics.forget_windows()
        self._record_standing(organic)

    def _record_standing(self, organic: Profile) -> None:
        """The gap standing when the baseline was taken: the baseline against the synthetic profile."""
        self.metrics.record_gap(self.synthetic.evaluate(organic.reference), self._ranks, standing=True)

    def _renew(self) -> None:
        """Takes the baseline again from the next windows; until then drift is judged against the profile."""
        if not self.taking:
            log.warning("a baseline renewal came, but this worker takes no baseline (`baseline: {events: N}`)")
            return
        self.analyzer, self.gap, self.taken, self.reality_gap = self.synthetic, None, None, []
        self.metrics.reference = "synthetic"
        self.metrics.forget_windows()
        self.metrics.standing_gap_psi.clear()
        log.info("taking the organic baseline again, from the next %d events", self.taking)

    def _judge(self, window: Window) -> list[dict[str, Any]]:
        """Statistics, detectors and metrics for one closed window; returns its alert events."""
        analyzer, metrics, profile = self.analyzer, self.metrics, self.profile
        results = analyzer.evaluate(window.sketch)
        gaps = analyzer.coverage_gaps(window.sketch)
        located = window.detect(analyzer.detectors)
        detections = [{**d.to_json(), "topic": source, "partition": partition} for source, partition, d in located]
        metrics.record_detections([d for *_, d in located])
        metrics.record_window(results, gaps, window.sketch.events, self.config.drift, self._ranks)
        gap_results = results
        if self.gap is not None:
            gap_results = self.gap.evaluate(window.sketch)
            metrics.record_gap(gap_results, self._ranks)
        self.reality_gap = explain(profile, gap_results[:RECENT_WINDOWS], window.sketch)
        sources = self.synthetic.sources(window.sketch)
        metrics.record_accuracy(sources, gap_results, self._ranks)
        departing = self.synthetic.slices(window.sketch)
        metrics.record_slices(departing)
        self.horizon.append(Sketch(window.sketch.events, {}, {}, {}, slices=window.sketch.slices,
                                   slice_outcomes=window.sketch.slice_outcomes))
        self.horizon_slices = self.synthetic.slices(functools.reduce(Sketch.merge, self.horizon))
        metrics.record_bins(profile.channels, profile.groups, profile.reference, window.sketch, self._ranks)
        metrics.last_window.labels(profile.spec.model).set_to_current_time()
        if self.config.window.seconds and not self.config.window.events:
            end = (window.key + self.config.window.seconds * 1000) / 1000
            metrics.window_delay.labels(profile.spec.model).observe(max(time.time() - end, 0.0))
        context = {"model": profile.spec.model, "profile": profile.id, "reference": metrics.reference,
                   "window": {"key": window.key, "events": window.sketch.events}}
        events = [alert_event(change, context, self.config.drift) for change in self.alert_states.advance(results)]
        events += [slice_alert_event(change, context) for change in self.slice_states.advance(departing)]
        for event in events:
            metrics.alerts.labels(profile.spec.model, event["state"]).inc()
        worst = max((r.severity for r in results), default=Severity.OK)
        self.last = (window.sketch, results, sources, departing)
        self.recent.append({
            "key": window.key, "events": window.sketch.events, "digest": window.sketch.digest(), "worst": str(worst),
            "reference": metrics.reference, "provenance": [s.to_json() for s in sources],
            "slices": [s.to_json() for s in departing],
            "flattery": [{"segment": r.group.label, "labelled": r.stats["labelled"], "index": r.stats["accuracy_gap"],
                          "low": r.stats["accuracy_gap_low"], "high": r.stats["accuracy_gap_high"]}
                         for r in gap_results if r.kind == "performance" and r.stats.get("accuracy") is not None],
            "results": [r.to_json() for r in results if r.severity > Severity.OK],
            "coverage_gaps": [g.to_json() for g in gaps[:10]], "detections": detections, "alerts": events,
        })
        log.info("window %s: %d events, worst %s, %d alert events", window.key, window.sketch.events, worst,
                 len(events))
        if self.taking and self.gap is None:
            self._take(window.sketch)
        return events
