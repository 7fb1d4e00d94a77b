"""Simultaneous translation: an utterance is recognised while it is being spoken, and released
downstream clause by clause, so translation and speech start before the speaker pauses.

:class:`IncrementalAsr` is all of it for one session. On the feeder's side it turns the speech
heard so far into a :class:`SpeechUpdate` every step while the ASR is free (:meth:`~IncrementalAsr.due`),
and the finished segment into the last one (:meth:`~IncrementalAsr.final`). As the ASR stage it re-reads
each update with the engine's ASR, commits what a pass aligns well before the end heard (``policy:
aligned``; with ``agreement``, what two consecutive passes agree on: LocalAgreement-2), and cuts the
committed words into clauses. Each clause travels on as an utterance of its own (its own
``utt_id``, in spoken order, naming its ``source_id``), so MT, TTS, the reorderer, the sinks and
the log treat it like any utterance; the source's last clause carries the source's end of speech.
:class:`PassPacer` keeps the passes to what the machine affords, so the lag cannot grow on a slow one;
:func:`auto_mode` decides, by :func:`s3tvr.backends.asr.pass_cost_s`, whether a session in mode ``auto`` runs simultaneously.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from s3tvr.audio import SAMPLE_RATE
from s3tvr.backends.kinds import AsrBackend, Word
from s3tvr.config import SimultaneousConfig
from s3tvr.errors import InputError
from s3tvr.live.agreement import POLICIES, ClauseSplitter, clause_text, commit_policy, ends_sentence
from s3tvr.live.messages import SpeechSegment, SpeechUpdate, StageTiming, Transcript, UtteranceEnd, UttInfo
from s3tvr.live.pipeline import Stage
from s3tvr.live.segmenter import Segmenter
from s3tvr.text.glossary import NO_GLOSSARY, Glossary

log = logging.getLogger(__name__)

MODES = ("auto", "sentence", "simultaneous")


def check_mode(config: SimultaneousConfig) -> None:
    if config.mode not in MODES:
        raise InputError(f"simultaneous.mode must be auto, sentence or simultaneous, not {config.mode!r}")
    if config.policy not in POLICIES:
        raise InputError(f"simultaneous.policy must be {' or '.join(POLICIES)}, not {config.policy!r}")


def auto_mode(pass_s: Optional[float], sessions: int, config: SimultaneousConfig) -> tuple[str, str]:
    """Mode ``auto``'s choice for a session that would make ``sessions`` running simultaneously on
    one engine, and why: simultaneous while :class:`PassPacer` would keep passes over 10 s of speech
    going. Sessions share the engine's ASR (one pass at a time), so each one's passes can come only
    every ``sessions`` × pass / ``pass_budget`` seconds; past ``max_step_s`` the pacer would leave
    every long utterance to its end, which is sentence mode with more work. Measured (docs/measurements.md,
    benchmarks/bench_lag.py): on one core, where passes could come every 2.8 s, simultaneous mode
    still ended sooner than sentence mode (EndOffset, LAAL) and the lag did not grow."""
    if pass_s is None:
        return "sentence", "no recognition pass could be timed: this ASR cannot recognise incrementally, or failed"
    every = sessions * pass_s / config.pass_budget
    others = f" with {sessions - 1} other simultaneous session{'s' * (sessions > 2)}" if sessions > 1 else ""
    measured = f"a recognition pass over 10 s of speech takes {pass_s:.2f} s here: passes{others} could come every {every:.1f} s"
    if every <= config.max_step_s:
        return "simultaneous", measured
    return "sentence", f"{measured}, more than simultaneous.max_step_s ({config.max_step_s:g} s)"


class PassPacer:
    """How often this machine affords a simultaneous pass, judged by what the last one cost.

    Every pass re-reads the utterance so far, so its cost grows with the utterance, and on a slow
    machine passes back to back would take all the CPU from MT, TTS and the final pass: the lag
    would grow with every sentence. Passes may take ``budget`` of the time: after a pass of c
    seconds the next waits for max(step_s, c / budget) of new speech ("slowed"). When that wait
    would be longer than ``max_step_s``, recognition cannot keep pace: the rest of the utterance is
    recognised once, when it ends, as in sentence mode ("stopped"); the next utterance starts over.
    """

    def __init__(self, step_s: float, max_step_s: float, budget: float):
        self.base_step_s, self.max_step_s, self.budget = step_s, max_step_s, budget
        self.step_s = step_s  # the speech to wait for before the next pass
        self.stopped = False  # no more passes in this utterance: its final pass recognises the rest

    @property
    def state(self) -> str:
        return "stopped" if self.stopped else "slowed" if self.step_s > self.base_step_s else ""

    def passed(self, cost_s: float, final: bool) -> str:
        """A pass took ``cost_s``: the next step. Returns the state the pass ran under."""
        ran_under = self.state
        need = cost_s / self.budget
        self.step_s = min(self.max_step_s, max(self.base_step_s, need))
        self.stopped = not final and need > self.max_step_s
        return ran_under


class TentativeTails:
    """The clauses of tails recognised in a pause before the endpoint confirmed it
    (``simultaneous.tail_after_ms``): translated and spoken at once, their speech held until the
    endpoint confirms the pause (kept) or the speaker goes on (dropped). The ASR stage settles them;
    the session, playing in spoken order, waits at a pending one (:meth:`state`)."""

    def __init__(self) -> None:
        self._state: dict[int, str] = {}
        self._lock = threading.Lock()

    def hold(self, utt_id: int) -> None:
        with self._lock:
            self._state[utt_id] = "pending"

    def settle(self, utt_ids: list[int], keep: bool) -> None:
        with self._lock:
            for utt_id in utt_ids:
                self._state[utt_id] = "kept" if keep else "dropped"

    def drop_pending(self) -> None:
        """The input ended with a tail unconfirmed (its speech too short to make a segment): drop it."""
        with self._lock:
            self._state = {k: "dropped" if v == "pending" else v for k, v in self._state.items()}

    def state(self, utt_id: int) -> str:
        """pending, kept or dropped; "" for a clause that was never tentative."""
        with self._lock:
            return self._state.get(utt_id, "")

    def forget(self, utt_id: int) -> None:
        """The clause is played or dropped: memory stays flat over an endless run."""
        with self._lock:
            self._state.pop(utt_id, None)


@dataclass
class _Tail:
    """The tentative pass of the open source utterance: the pause it read, and the clauses it sent."""

    end_s: float  # where the speech before the pause ended (SpeechUpdate.tentative)
    utt_ids: list[int]
    voice_fed: int  # the voice's samples before it: restored if it is dropped


class IncrementalAsr(Stage):
    """One session's simultaneous recognition over the engine's ASR (its lock is taken around each
    pass, as for the ASR stage it replaces). One worker: updates must be read in order."""

    name = "asr"

    def __init__(self, asr: AsrBackend, config: SimultaneousConfig, src_lang: str = "", tgt_lang: str = "",
                 voice: Any = None, glossary: Glossary = NO_GLOSSARY):
        self.asr = asr
        self.voice = voice  # the session's, for every clause (a voice-cloning TTS speaks in it)
        self.glossary = glossary  # the session's: biases each pass, and every clause carries it on
        self.src_lang, self.tgt_lang = src_lang or asr.src_lang, tgt_lang or asr.tgt_lang
        self.backend = asr.backend
        self.config = config
        self._idle = threading.Event()  # set when no update waits or runs: the feeder sends the next only then
        self._idle.set()
        self._sent_s = 0.0  # how much of the open utterance the last update held
        self.next_id = 0  # clause utterance ids, consecutive in spoken order
        self.sources = 0
        self._start_s: Optional[float] = None  # the source utterance being read: where it starts
        self._source_id = 0
        self._voice_fed = 0  # samples of the source's speech already given to the voice (UttInfo.speech)
        self._agreement = commit_policy(config.policy, config.trim_s, config.align_threshold_s)
        self._clauses = ClauseSplitter(config.clause_max_words, config.clause_min_words, config.clause_pause_s)
        self.pacer = PassPacer(config.step_s, config.max_step_s, config.pass_budget)
        self._said: set[str] = set()  # pacing states already logged: each is said once per session
        self.tails = TentativeTails()  # the session plays a tentative clause's speech once it is kept
        self._tail: Optional[_Tail] = None  # the open source's tentative pass, until its endpoint settles it
        self._paused_at: Optional[float] = None  # where the speech before the pause a tentative pass read ends
        # Where the utterance whose last pass heard no sentence end starts: a pause there is more likely a
        # speaker looking for a word ("de …") than the end, and passes no tentative pass.
        self._sentence_open: Optional[float] = None

    # -- the feeder's side: what to read, and when ------------------------------------------------

    def due(self, segmenter: Segmenter, t_arrival: float) -> Optional[SpeechUpdate]:
        """The utterance heard so far, once a pass is due: every step of new speech while the ASR is
        free (a pass slower than the step is never queued behind another: the next one reads more);
        in a pause of ``tail_after_ms``, once, a tentative pass over the rest."""
        heard_s = segmenter.open_s
        if heard_s < self._sent_s:  # a new utterance began
            self._sent_s = 0.0
        if heard_s == 0 or not self._idle.is_set():
            return None
        end = segmenter.speech_end()
        if end is not None and end[0] == self._paused_at:
            return None  # a tentative pass read this pause: nothing new to hear until the speaker goes on
        tentative = (self.config.tail_after_ms and end is not None and self._sentence_open != segmenter.open_start_s
                     and segmenter.pause_s * 1000 >= self.config.tail_after_ms)
        pacer = self.pacer
        if not tentative and (heard_s < self.config.min_audio_s or heard_s - self._sent_s < pacer.step_s or pacer.stopped):
            return None
        start_s, t_start, audio = segmenter.open_speech()
        self._sent_s = heard_s
        self._idle.clear()
        if tentative:
            self._paused_at = end[0]
        return SpeechUpdate(audio, start_s, t_start, t_arrival, tentative=end if tentative else None)

    def withdraw(self, update: SpeechUpdate) -> None:
        """The feeder keeps ``update`` back (the echo guard judged it our own output): the ASR is free."""
        self._idle.set()

    def final(self, seg: SpeechSegment) -> SpeechUpdate:
        """The segmenter's finished segment, as its utterance's last update."""
        self._sent_s = 0.0
        utt = seg.utt
        tail_s = utt.seg_start_s + len(seg.audio) / SAMPLE_RATE - utt.seg_end_s  # the silence kept after the speech
        return SpeechUpdate(seg.audio, utt.seg_start_s, utt.t_speech_start or utt.t_speech_end, utt.t_speech_end + tail_s,
                            final=seg)

    # -- the ASR stage's side: read, agree, cut into clauses -----------------------------------------

    def process(self, update: SpeechUpdate) -> Iterator[Any]:
        try:
            if update.start_s != self._start_s:  # a new source utterance
                self._settle_tail(keep=False)  # its segment never came (too little speech)
                self._new_source(update)
            if update.final is not None and update.final.utt.skipped:  # the echo guard's: our own output heard back
                self._settle_tail(keep=False)
                utt = self._clause_utt(update, [], time.monotonic())
                utt.skipped = update.final.utt.skipped
                yield UtteranceEnd(utt)
                return
            if self._tail is not None:
                keep = update.final is not None and update.final.utt.seg_end_s == self._tail.end_s
                self._settle_tail(keep)
                if keep:  # the endpoint confirms the pause the tentative pass read: its clauses were the last
                    return
            yield from self._read(update)
        finally:
            self._idle.set()

    def _new_source(self, update: SpeechUpdate) -> None:
        self._start_s, self._source_id = update.start_s, self.sources
        self.sources += 1
        self._agreement = commit_policy(self.config.policy, self.config.trim_s, self.config.align_threshold_s)
        self._voice_fed = 0
        self._clauses = ClauseSplitter(self.config.clause_max_words, self.config.clause_min_words,
                                       self.config.clause_pause_s)

    def _settle_tail(self, keep: bool) -> None:
        tail, self._tail = self._tail, None
        if tail is None:
            return
        self.tails.settle(tail.utt_ids, keep)
        if not keep:
            self._voice_fed = tail.voice_fed
            log.debug("source %d: the speaker went on after a pause: %d tentative clauses dropped",
                      self._source_id, len(tail.utt_ids))

    def _read(self, update: SpeechUpdate) -> Iterator[Any]:
        """One pass and what it sends on. A tentative pass reads like the final one, on a copy of the
        agreement: dropped, it leaves the utterance as it was."""
        last = update.final is not None or update.tentative is not None
        saved = (copy.deepcopy(self._agreement), copy.deepcopy(self._clauses)) if update.tentative else None
        tail = _Tail(update.tentative[0], [], self._voice_fed) if update.tentative else None
        t0 = time.monotonic()
        try:
            clauses = self._pass(update)
        except Exception as exc:  # one failed pass costs this utterance, not the run
            log.warning("recognition failed: %s", exc)
            if update.final is None:
                return  # the next pass (or the final one) tries again
            utt = self._clause_utt(update, [], t0)
            utt.error = f"asr: {type(exc).__name__}: {exc}"
            yield UtteranceEnd(utt)
            return
        pacing = self._paced(time.monotonic() - t0, update)
        out: list[Any] = []
        for n, words in enumerate(clauses):
            utt = self._clause_utt(update, words, t0, last and n == len(clauses) - 1)
            utt.asr_pacing = pacing
            out.append(Transcript(utt, utt.src_text or utt.tgt_text, self.asr.output_language))
        if last and not clauses:
            # Its clauses (if any) are already on their way: an empty last clause carries the
            # source's end of speech to the log, so its end offset can be measured.
            utt = self._clause_utt(update, [], t0)
            utt.skipped = "end of the utterance" if self._agreement.committed else "no words recognised"
            utt.asr_pacing = pacing
            out.append(UtteranceEnd(utt))
        if saved is not None and tail is not None:
            self._agreement, self._clauses = saved
            for m in out:
                self.tails.hold(m.utt.utt_id)
                tail.utt_ids.append(m.utt.utt_id)
            self._tail = tail
        yield from out

    def _paced(self, cost_s: float, update: SpeechUpdate) -> str:
        """Tell the pacer what the pass cost; say (once a session) when passes had to slow or stop."""
        ran_under = self.pacer.passed(cost_s, final=update.final is not None)
        state, heard_s = self.pacer.state, len(update.audio) / SAMPLE_RATE
        if state and state not in self._said:
            self._said.add(state)
            if state == "slowed":
                log.info("simultaneous: a pass over %.1f s of speech took %.2f s here: passes every %.1f s instead of %.1f s",
                         heard_s, cost_s, self.pacer.step_s, self.pacer.base_step_s)
            else:
                log.warning("simultaneous: recognition cannot keep pace on this machine (a pass over %.1f s of speech "
                            "took %.2f s): an utterance whose passes cost that much is recognised when it ends",
                            heard_s, cost_s)
        return ran_under

    def _pass(self, update: SpeechUpdate) -> list[list[Word]]:
        """One look at the speech so far: the clauses it completes (at the end, or in a pause that may
        be the end: all that is left, read from shortly before it, :meth:`LocalAgreement.tail_start`)."""
        agreement = self._agreement
        heard_s = len(update.audio) / SAMPLE_RATE
        last = update.final is not None or update.tentative is not None
        start = agreement.tail_start(heard_s) if last else agreement.buffer_start_s
        words = self.asr.hypothesis(update.audio[int(start * SAMPLE_RATE):], agreement.prompt_before(start), self.src_lang,
                                    self.glossary.hotwords())
        log.debug("pass over %.1f s of source %d%s: %s", heard_s - start, self._source_id,
                  " (final)" if update.final is not None else " (tentative)" if last else "", " ".join(w.text for w in words))
        if not last:
            clauses = self._clauses.push(agreement.update(words, start, heard_s))
            agreement.trim(heard_s)
            self._sentence_open = None if words and ends_sentence(words[-1].text) else update.start_s
            return clauses
        clauses = self._clauses.push(agreement.finish(words, start))
        rest = self._clauses.flush()
        return clauses + ([rest] if rest else [])

    def _clause_utt(self, update: SpeechUpdate, words: list[Word], t0: float, last: bool = True) -> UttInfo:
        """A clause as an utterance: where it was spoken, and when its last word had been heard."""
        now = time.monotonic()
        heard_s = len(update.audio) / SAMPLE_RATE
        start, end = (words[0].start, words[-1].end) if words else (heard_s, heard_s)
        # The last clause ends where the speech did: the segment's end, or the pause a tentative pass read.
        final = update.final.utt if last and update.final is not None else None
        end_s, t_end = ((final.seg_end_s, final.t_speech_end) if final else update.tentative if last and update.tentative
                        else (update.start_s + end, update.t_audio_end - max(0.0, heard_s - end)))
        utt = UttInfo(
            utt_id=self.next_id, src_lang=self.src_lang, tgt_lang=self.tgt_lang,
            seg_start_s=update.start_s + start, seg_end_s=end_s, t_speech_end=t_end,
            t_vad_emit=now, source_id=self._source_id, last_clause=last, t_speech_start=update.t_speech_start,
            voice=self.voice, glossary=self.glossary,
        )
        self.next_id += 1
        utt.stages["asr"] = StageTiming(start=t0, end=now, first_out=now, backend=self.backend)
        text = clause_text(words)
        if self.asr.output_language != self.asr.tgt_lang:  # source text (MT follows), or already the target's
            utt.src_text = text
        else:
            utt.tgt_text = text
        # A voice-cloning TTS learns the speaker from the speech: each clause brings what was heard
        # since the last one that brought any, so the first clause already has a voice to speak in.
        if len(update.audio) > self._voice_fed:
            utt.speech = update.audio[self._voice_fed:]
            self._voice_fed = len(update.audio)
        return utt
