"""``s3tvr serve``'s Prometheus metrics (``GET /metrics``): counts and latencies only, never text or audio.

Each :class:`~s3tvr.serve.server.Server` has its own registry, so two servers in one process (the
tests, replicas) never share or clash over a metric. The latencies are observed as each session
logs an utterance (:meth:`ServeMetrics.utterance`, the server's hook), never polled.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from s3tvr.latency.field_metrics import end_offset
from s3tvr.latency.record import UtteranceRecord

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
REFUSALS = ("origin", "token", "query", "busy")  # the checks a connection passes before its session, in order
STAGES = ("asr", "mt", "tts")  # the stages timed per utterance (denoise, when on, is part of neither)
# Seconds of speech latency: a quarter second (a fast first audio) to half a minute (a long
# utterance spoken whole, or a server far behind); beyond is +Inf.
LATENCY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0)
# A stage's compute per utterance: from a few milliseconds (MT of a short phrase) to seconds.
STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class ServeMetrics:
    """One server's metrics in a registry of its own; ``active`` reads its sessions running now."""

    def __init__(self, active: Callable[[], int]):
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.sessions_active = Gauge("s3tvr_sessions_active", "Sessions running now", registry=registry)
        self.sessions_active.set_function(active)  # read at each scrape: the server's own count, never a copy
        self.sessions = Counter("s3tvr_sessions", "Sessions opened since the server started", registry=registry)
        self.refusals = Counter("s3tvr_refusals", "Connections refused before their session, by why",
                                ["reason"], registry=registry)
        self.closes = Counter("s3tvr_closes", "Connections closed or refused, by WebSocket close code",
                              ["code"], registry=registry)
        for reason in REFUSALS:  # at 0 from the start: a rate over a series that appears only on its first refusal misses it
            self.refusals.labels(reason=reason)
        self.first_audio = Histogram("s3tvr_first_audio_seconds", "End of speech to first translated audio, per utterance",
                                     buckets=LATENCY_BUCKETS, registry=registry)
        self.end_offset = Histogram("s3tvr_end_offset_seconds",
                                    "End of the source speech to the end of its translation heard, per source utterance",
                                    buckets=LATENCY_BUCKETS, registry=registry)
        self.stage = Histogram("s3tvr_stage_seconds", "A stage's compute per utterance (to its first output when streaming)",
                               ["stage"], buckets=STAGE_BUCKETS, registry=registry)

    def refused(self, reason: str) -> None:
        """A connection refused before its session, by the check that refused it (REFUSALS)."""
        self.refusals.labels(reason=reason).inc()

    def closed(self, code: int) -> None:
        """A connection closed or refused with ``code``."""
        self.closes.labels(code=str(code)).inc()

    def utterance(self, rec: UtteranceRecord, source: Sequence[UtteranceRecord]) -> None:
        """A session logged ``rec``; ``source``: the records of its source utterance so far (all of
        them once ``rec`` is its last clause: then its EndOffset is known). Called on the session's
        thread (prometheus_client's metrics take that)."""
        if rec.latency_s is not None:
            self.first_audio.observe(rec.latency_s)
        for name, seconds in rec.stage_compute().items():
            if name in STAGES:
                self.stage.labels(stage=name).observe(seconds)
        if rec.last_clause:
            offset = end_offset(source)
            if offset is not None:
                self.end_offset.observe(offset)

    def text(self) -> bytes:
        """The Prometheus text format of every metric now."""
        return generate_latest(self.registry)


class SourceRecords:
    """One session's records of the source utterance being spoken (simultaneous mode's clauses,
    in order; sentence mode's one record), as :meth:`ServeMetrics.utterance` takes them."""

    def __init__(self) -> None:
        self._records: list[UtteranceRecord] = []

    def add(self, rec: UtteranceRecord) -> list[UtteranceRecord]:
        """``rec`` logged: its source utterance's records so far (all of them when it is the last clause)."""
        source = [r for r in self._records if r.source_id == rec.source_id] + [rec]
        self._records = [] if rec.last_clause else source
        return source
