"""Stages on worker threads, linked by bounded queues: one session's chain.

A stage is a small class: ``setup()`` loads its model, ``process(item)`` yields zero or more
outputs, ``cleanup()`` frees it (the :class:`~s3tvr.live.engine.Engine` calls those, once for all
sessions). One generic worker runs every stage; it stamps timings on the utterance, isolates
failures to the utterance that caused them, and ends every utterance with exactly one
:class:`UtteranceEnd` so the sink always knows when an utterance is finished.

Two ways to stop, as in pipecat: ``DRAIN`` flows down the chain behind the last item so that
everything queued finishes; :meth:`Pipeline.cancel` stops every worker now.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from contextlib import nullcontext
from typing import Any, Iterator, Optional

from s3tvr.live.messages import SpeechUpdate, StageTiming, UtteranceEnd

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often a blocked worker looks at the cancel flag


class _Drain:
    def __repr__(self) -> str:
        return "DRAIN"


DRAIN = _Drain()


class Cancelled(Exception):
    """Raised inside the engine when the run was cancelled; never escapes to the user."""


class Stage:
    """Base class for a stage. Subclasses set ``name`` and implement ``process``."""

    name = "stage"
    backend = ""
    thread_safe = False  # may several workers call process() at once?

    def setup(self) -> None:
        """Load models. Called once on the worker's thread before the first item."""

    def process(self, item: Any) -> Iterator[Any]:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Free models. Called once when the run ends, whichever way."""


class Channel:
    """A bounded queue whose put and get give up when the run is cancelled."""

    def __init__(self, size: int, cancelled: threading.Event):
        self._q: queue.Queue = queue.Queue(maxsize=size)
        self._cancelled = cancelled

    def put(self, item: Any) -> None:
        while True:
            if self._cancelled.is_set():
                raise Cancelled
            try:
                self._q.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def get(self, timeout: Optional[float] = None) -> Any:
        """The next item; ``None`` when ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._cancelled.is_set():
                raise Cancelled
            wait = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - time.monotonic()))
            try:
                return self._q.get(timeout=wait)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    return None


class Pipeline:
    """Runs a chain of loaded stages: ``input`` → stage 1 → … → stage n → ``output``.

    ``locks``: stage name → a lock held around each call of that stage (shared by every
    pipeline over the same models, for stages not safe to call from two threads at once)."""

    def __init__(self, stages: list[Stage], queue_size: int = 8, workers: Optional[dict[str, int]] = None,
                 locks: Optional[dict[str, threading.Lock]] = None):
        self.stages = stages
        self.locks = locks or {}
        self.cancelled = threading.Event()
        self.channels = [Channel(queue_size, self.cancelled) for _ in range(len(stages) + 1)]
        self.workers = workers or {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}
        for stage in stages:
            n = self.workers.get(stage.name, 1)
            if n > 1 and not stage.thread_safe:
                raise ValueError(f"stage {stage.name} is not thread-safe; it can have only one worker")

    @property
    def input(self) -> Channel:
        return self.channels[0]

    @property
    def output(self) -> Channel:
        return self.channels[-1]

    def start(self) -> None:
        for i, stage in enumerate(self.stages):
            n = self.workers.get(stage.name, 1)
            self._running[stage.name] = n
            last = i == len(self.stages) - 1
            for k in range(n):
                t = threading.Thread(
                    target=self._work,
                    args=(stage, self.channels[i], self.channels[i + 1], last),
                    name=f"s3tvr-{stage.name}-{k}",
                    daemon=True,  # a model call cannot be interrupted; cancel must not wait for it
                )
                t.start()
                self._threads.append(t)

    def cancel(self) -> None:
        self.cancelled.set()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the workers; True if all ended within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _work(self, stage: Stage, inbox: Channel, outbox: Channel, last: bool) -> None:
        try:
            while True:
                item = inbox.get()
                if item is DRAIN:
                    inbox.put(DRAIN)  # sibling workers of this stage see it too
                    with self._lock:
                        self._running[stage.name] -= 1
                        done = self._running[stage.name] == 0
                    if done:
                        outbox.put(DRAIN)
                    return
                if isinstance(item, UtteranceEnd):
                    outbox.put(item)
                    continue
                self._run_one(stage, item, outbox, last)
        except Cancelled:
            return

    def _run_one(self, stage: Stage, item: Any, outbox: Channel, last: bool) -> None:
        if isinstance(item, SpeechUpdate):  # simultaneous ASR: the stage starts, times and ends its utterances itself
            with self.locks.get(stage.name) or nullcontext():
                for out in stage.process(item):
                    outbox.put(out)
            return
        utt = item.utt
        more = getattr(item, "more", False)  # pieces of this utterance follow (a translation streamed clause by clause)
        timing = utt.stages.get(stage.name) if getattr(item, "piece", 0) else None
        if timing is None:  # a later piece goes on with the first one's timing: its start and first output
            timing = StageTiming(start=time.monotonic(), backend=stage.backend)
            utt.stages[stage.name] = timing
        produced = failed = False
        try:
            # The lock covers the whole call: a streaming model (XTTS) keeps per-call state in the
            # model between chunks. The session's sink keeps reading, so the puts inside do not stall.
            with self.locks.get(stage.name) or nullcontext():
                for out in stage.process(item):
                    if timing.first_out is None:
                        timing.first_out = time.monotonic()
                    produced = True
                    outbox.put(out)
        except Cancelled:
            raise
        except Exception as exc:  # one bad utterance must not stop the run
            utt.error = f"{stage.name}: {type(exc).__name__}: {exc}"
            log.warning("utterance %d failed in %s: %s", utt.utt_id, stage.name, exc)
            log.debug("traceback", exc_info=True)
            failed = True
        finally:
            timing.end = time.monotonic()
        if failed or (not more and (last or not produced)):
            outbox.put(UtteranceEnd(utt))


class Reorderer:
    """Releases messages in spoken order, however the stages finished.

    Messages of the oldest unfinished utterance pass at once (so its audio streams); those of
    later utterances wait until it ends. Utterance ids are consecutive, starting at ``first_id``.
    """

    def __init__(self, first_id: int = 0):
        self.next_id = first_id
        self._waiting: dict[int, list[Any]] = {}

    def push(self, msg: Any) -> list[Any]:
        uid = msg.utt.utt_id
        if uid < self.next_id:
            return []  # a second end after a stage failed mid-stream; the utterance is closed
        if uid > self.next_id:
            self._waiting.setdefault(uid, []).append(msg)
            return []
        out = [msg]
        if isinstance(msg, UtteranceEnd):
            self.next_id += 1
            out.extend(self._release())
        return out

    def _release(self) -> list[Any]:
        out: list[Any] = []
        while self.next_id in self._waiting:
            for msg in self._waiting.pop(self.next_id):
                out.append(msg)
                if isinstance(msg, UtteranceEnd):
                    self.next_id += 1
                    break
            else:
                break  # still streaming: the rest of it comes later
        return out
