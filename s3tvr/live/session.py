"""A session: one run over an engine's models: source → segmenter → denoise → ASR → MT → TTS →
sink → latency log.

The source and segmenter share one feeder thread; each stage has its own worker(s) for this
session, taking the engine's lock around models that two threads must not call at once; the sink
loop runs on the calling thread, so Ctrl-C (KeyboardInterrupt) lands there and aborts the run.
Several sessions may run on one engine at the same time, each on its own thread: utterance ids,
queues, reordering, the voice and the log are per session, so nothing crosses between them.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from s3tvr import files
from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.echo import ECHO_HEARD, EchoGuard
from s3tvr.errors import InputError, S3tvrError, SetupError, TranslationFailed
from s3tvr.latency.record import Clock, Collector, UtteranceRecord
from s3tvr.live.captions import CaptionFiles
from s3tvr.live.messages import DROPPED_TAIL, AudioChunk, Block, SpeechSegment, SpeechUpdate, UtteranceEnd
from s3tvr.live.pacing import PacedTts
from s3tvr.live.pipeline import DRAIN, Cancelled, Pipeline, Reorderer
from s3tvr.live.segmenter import Segmenter
from s3tvr.live.simultaneous import IncrementalAsr, check_mode
from s3tvr.live.sinks import FileSink, PlaybackGate, Sink, SpeakerSink, TeeSink
from s3tvr.live.sources import FileSource, MicSource, Source
from s3tvr.live.stages import MtStage
from s3tvr.text.glossary import NO_GLOSSARY, Glossary

if TYPE_CHECKING:  # only for the annotation: the engine imports this module when it makes a session (Engine.session)
    from s3tvr.live.engine import Engine

log = logging.getLogger(__name__)

ABORT_GRACE_S = 1.0  # how long an abort waits for workers before leaving them (daemon threads)
TRANSCRIPT_WAIT_S = 30.0  # the longest an utterance's record waits for its transcript pass (a hung model must not stop the run)


@dataclass
class RunResult:
    records: list[UtteranceRecord] = field(default_factory=list)  # each utterance's log record (unless keep_records=False)
    aborted: bool = False  # stopped before the input ended
    stop_signal: int = signal.SIGINT  # what stopped an aborted run: Ctrl-C, or SIGTERM/SIGHUP turned into the same
    overflows: int = 0
    source: str = "the microphone"
    spoken: int = 0  # utterances whose translation was spoken (or written)
    failed: int = 0
    first_error: str = ""

    @property
    def exit_code(self) -> int:
        return 128 + self.stop_signal if self.aborted else 0  # the shell's convention for a death by signal

    def check(self) -> None:
        """Raise if a run that was not stopped translated nothing: it must never look like success."""
        if self.aborted or self.spoken:
            return
        if self.failed:
            raise TranslationFailed(f"none of the {self.failed} utterances heard in {self.source} was translated; the first "
                                    f"failed with: {self.first_error} (--log keeps each one's error)")
        raise InputError(f"no speech heard in {self.source}: give a recording with speech "
                         f"(a very quiet one: lower the speech threshold, e.g. --set vad.threshold=0.3)")


class Session:
    """One run of the live translator over ``engine``. Build it, then ``run()``; the engine's
    models load (once per engine) when the first session runs, after the cheap checks.

    ``input``: a file to replay (None: the microphone). ``output``: a WAV file to write (None:
    the speaker; from a microphone, both). ``source``/``sink`` replace the audio ends outright.
    ``on_record`` sees each utterance's :class:`UtteranceRecord` as it is logged. ``voice``: recordings of
    the speaker for a voice-cloning TTS, ``speaker``: a name to keep the learned voice under
    (neither: the voice is learned from this session's speech); ``voice_owner``: who the session
    speaks for, who alone may use and extend the voice saved under that name ("": this machine's
    user; a server gives its client's), unless ``share_voices`` lends it to others as saved
    (TtsBackend.new_voice). ``src_lang``/``tgt_lang``: this session's pair when it is not the
    engine's (one the engine can serve: Engine.check_languages). ``captions``: a .vtt or .srt file
    the translation's captions are written into as they are logged, the source's beside it
    (:mod:`s3tvr.live.captions`). ``glossary``: the words this session's speaker chose
    (:mod:`s3tvr.text.glossary`), carried by each utterance through every stage.
    """

    def __init__(self, engine: Engine, input: Optional[str] = None, output: Optional[str] = None,
                 log_path: Optional[str] = None, record_dir: Optional[str] = None, source: Optional[Source] = None,
                 sink: Optional[Sink] = None,
                 on_record: Optional[Callable[[UtteranceRecord], None]] = None, keep_records: bool = True,
                 voice: Sequence[str | Path] = (), speaker: str = "", src_lang: str = "", tgt_lang: str = "",
                 voice_owner: str = "", share_voices: bool = False, captions: Optional[str] = None,
                 glossary: Glossary = NO_GLOSSARY):
        self.engine = engine
        self.config = config = engine.config
        self.src_lang, self.tgt_lang = src_lang or config.src_lang, tgt_lang or config.tgt_lang
        engine.check_languages(self.src_lang, self.tgt_lang)
        self.voice_clips = engine.tts.check_voice(voice, speaker, voice_owner, share_voices)
        self.speaker, self.voice_owner, self.share_voices = speaker, voice_owner, share_voices
        self.voice: Any = None  # the TTS's voice for this session, made once the models are loaded
        self.glossary = glossary
        for flag, path in (("--output", output), ("--log", log_path)):
            if input and path:  # writing it would destroy the recording
                files.check_not_same(input, path, flag)
        self.captions = CaptionFiles(captions) if captions else None
        if self.captions is not None:
            self.captions.check(input)
        self.source: Source = source if source is not None else self._make_source(input)
        self.result = RunResult(source=self.source.name)
        self.on_record = on_record
        self.gate = None
        # Half duplex where the speaker may be heard by the microphone (not into a virtual microphone).
        if self.source.is_microphone and not config.audio.full_duplex and not config.audio.virtual_mic:
            self.gate = PlaybackGate(config.audio.echo_tail_ms / 1000)
        # Full duplex on a speaker: what it played is heard back; the guard keeps it from being translated.
        self.guard: Optional[EchoGuard] = None
        self._echo_said: tuple[float, str] = (-1.0, "")  # the last speech the guard's verdict was said of
        if (self.source.is_microphone and config.audio.full_duplex and config.audio.echo_guard and sink is None
                and not config.audio.virtual_mic):
            self.guard = EchoGuard(config.audio.echo_threshold, config.audio.echo_max_delay_ms / 1000,
                                   keep_s=config.vad.max_segment_s + 10)
        self.sink: Sink = sink if sink is not None else self._make_sink(output)
        self.record_dir = Path(record_dir) if record_dir else None
        self.segmenter = Segmenter(config.vad, self.src_lang, self.tgt_lang, noise_profile_s=config.denoise.profile_s)
        simul = config.simultaneous
        check_mode(simul)
        if simul.clause_min_words > simul.clause_max_words:
            raise InputError(f"simultaneous.clause_min_words ({simul.clause_min_words}) must be at most clause_max_words "
                             f"({simul.clause_max_words})")
        self.mode = ""  # sentence or simultaneous, decided once the models are loaded (auto measures the machine)
        self.incremental: Optional[IncrementalAsr] = None
        self.pipeline: Optional[Pipeline] = None  # built in setup(), for the mode
        self._wrote_audio = False  # nothing written: the output file is not kept
        self.collector = Collector(log_path, Clock(), keep=keep_records)
        self._stop = threading.Event()
        self._feeder_error: Optional[BaseException] = None
        self._recorded: dict[int, list[AudioChunk]] = {}

    def _build_pipeline(self) -> Pipeline:
        """This session's stages over the engine's models, for its mode."""
        engine, config = self.engine, self.config
        stages = engine.stages
        if self.mode == "simultaneous":  # this session's own recognition state over the engine's ASR
            self.incremental = IncrementalAsr(engine.asr, config.simultaneous, self.src_lang, self.tgt_lang, self.voice,
                                              self.glossary)
            stages = [self.incremental, *(s for s in engine.stages if s.name not in ("denoise", "asr"))]
        # Lag control: the TTS speeds up when the listener falls behind.
        audio = config.audio
        paced = PacedTts(engine.tts, self.sink.backlog_s, audio.lag_s, audio.max_rate, audio.max_gap_s)
        # The translation in context: this session's own earlier sentences.
        own = {"tts": paced, **({"mt": MtStage(engine.mt)} if engine.mt is not None else {})}
        stages = [own.get(s.name, s) for s in stages]
        return Pipeline(stages, config.pipeline.queue_size, config.pipeline.workers, engine.locks)

    def _make_source(self, input: Optional[str]) -> Source:
        """A file, a program's audio (audio.listen_to), a pulse source by name ("pulse:NAME"), or a microphone."""
        cfg = self.config.audio
        if input and cfg.listen_to:
            raise InputError("--input and --listen-to both say what to translate: give one")
        if input:
            return FileSource(input, realtime=cfg.realtime)
        return live_source(cfg.input_device, cfg.listen_to, cfg.duck_db)

    def _make_sink(self, output: Optional[str]) -> Sink:
        """A file placed on the input's timeline, or what a listener hears (the speaker, a virtual
        microphone) and, with ``output``, a recording of it."""
        cfg = self.config.audio
        if output and not self.source.is_microphone and not cfg.virtual_mic:
            return FileSink(output, cfg.output_sample_rate, source=self.source)
        if cfg.virtual_mic and cfg.output_device is not None:
            raise InputError("--virtual-mic and --output-device both say where the translation goes: give one")
        if cfg.virtual_mic:
            from s3tvr.live.pulse import VirtualMicSink

            heard: Sink = VirtualMicSink(cfg.virtual_mic)
        else:
            heard = SpeakerSink(cfg.output_device, cfg.jitter_ms, self.gate, self.guard)
        if output:  # a recording of what was played, back to back
            return TeeSink(heard, FileSink(output, cfg.output_sample_rate))
        return heard

    # -- running ---------------------------------------------------------------------------

    def setup(self) -> None:
        """Check the input and every output, load the models, open the outputs, then start the
        source last (a microphone must not overflow while models load). The cheap checks come
        first so mistakes show at once, and nothing is created before they pass."""
        self.source.check()
        self.sink.check()
        self.collector.check()
        if self.record_dir is not None:
            files.check_output(self.record_dir, "--record-dir", folder=True)
        self.engine.setup()
        if self.record_dir is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
        self.sink.open()
        self.segmenter.setup(self.engine.vad_model(), turn=self.engine.turn_model() if self.config.vad.turn else None)
        self.voice = self.engine.tts.new_voice(self.voice_clips, self.speaker, self.voice_owner, self.share_voices)
        self.mode, why = self.engine.open_mode(live=self.source.realtime)
        log.info("%s mode (%s)", self.mode, why)
        self.pipeline = self._build_pipeline()
        self.source.open()

    def run(self) -> RunResult:
        """Set up, translate until the input ends (drain) or Ctrl-C (abort), and return the records.
        Whatever was spoken is kept in the output; a run that spoke nothing leaves no output file."""
        result = self.result
        try:
            self.setup()
        except BaseException:
            self._close(abort=True, discard=True)
            raise
        self.pipeline.start()
        feeder = threading.Thread(target=self._feed, name="s3tvr-feeder", daemon=True)
        feeder.start()
        log.info("listening (Ctrl-C stops)" if self.source.is_microphone else f"translating {self.source.name}")
        try:
            result.aborted = not self._play()
        except KeyboardInterrupt as stop:  # Ctrl-C, or a stop signal the caller turned into the same
            result.aborted, result.stop_signal = True, getattr(stop, "signum", signal.SIGINT)
        finally:
            if result.aborted:
                log.info("stopping now: finished utterances are kept")
            self._stop.set()
            self.pipeline.cancel()
            try:
                self._collect()
            finally:
                self._close(abort=result.aborted, discard=not self._wrote_audio)
                feeder.join(ABORT_GRACE_S)
                self.pipeline.join(ABORT_GRACE_S)
        if self._feeder_error is not None:
            raise self._feeder_error
        result.records = self.collector.records
        result.overflows = self.source.overflows
        return result

    def cancel(self) -> None:
        """Stop now, from another thread (the same as Ctrl-C)."""
        self._stop.set()
        if self.pipeline is not None:
            self.pipeline.cancel()

    def _feed(self) -> None:
        zeros = None
        try:
            for block in self.source.blocks(self._stop):
                if self.gate is not None and not self.gate.is_open():
                    # Half-duplex: the speaker is playing; what the mic hears now is our own voice.
                    zeros = zeros if zeros is not None and len(zeros) == len(block.samples) else np.zeros_like(block.samples)
                    block = Block(zeros, block.t_arrival)
                segments = self.segmenter.push(block)
                for seg in segments:
                    self._send(seg)
                update = self.incremental.due(self.segmenter, block.t_arrival) if self.incremental and not segments else None
                if update is not None and self._echo(update):
                    self.incremental.withdraw(update)  # our own output heard back: no pass over it
                elif update is not None:
                    self.pipeline.input.put(update)
            for seg in self.segmenter.flush():
                self._send(seg)
            self.pipeline.input.put(DRAIN)
        except Cancelled:
            pass
        except BaseException as exc:  # a device lost mid-run: stop the run and report it
            self._feeder_error = exc if isinstance(exc, S3tvrError) else SetupError(f"audio input failed: {exc}")
            self.cancel()

    def _send(self, seg: SpeechSegment) -> None:
        log.info("utterance %d: %.2f-%.2f s", seg.utt.utt_id, seg.utt.seg_start_s, seg.utt.seg_end_s)
        seg.utt.voice, seg.utt.glossary = self.voice, self.glossary or None
        if self.record_dir is not None:
            files.write_wav(self.record_dir / f"utt{seg.utt.utt_id:05d}_in.wav", seg.audio, SAMPLE_RATE)
        final = self.incremental.final(seg) if self.incremental is not None else None
        if self._echo(final or seg):
            seg.utt.skipped = ECHO_HEARD  # logged as skipped; no model sees it
            if final is None:
                self.pipeline.input.put(UtteranceEnd(seg.utt))
                return
        self.pipeline.input.put(seg if final is None else final)

    def _echo(self, item: SpeechSegment | SpeechUpdate) -> bool:
        """Full duplex on a speaker: is this speech mostly our own translation heard back?"""
        if self.guard is None:
            return False
        if isinstance(item, SpeechUpdate):
            audio, t_end, what = item.audio, item.t_audio_end, "speech so far" if item.final is None else "utterance"
        else:
            utt = item.utt
            tail_s = utt.seg_start_s + len(item.audio) / SAMPLE_RATE - utt.seg_end_s  # the silence kept after the speech
            audio, t_end, what = item.audio, utt.t_speech_end + tail_s, "utterance"
        echo, score = self.guard.is_echo(audio, t_end)
        start_s = item.start_s if isinstance(item, SpeechUpdate) else item.utt.seg_start_s
        if echo:  # said once an utterance (simultaneous mode asks before every pass)
            said = (start_s, what) == self._echo_said
            self._echo_said = (start_s, what)
            (log.debug if said else log.info)("%s at %.2f s: our own translation heard back (echo score %.2f): not translated",
                                             what, start_s, score)
        elif score:
            log.debug("echo score %.2f: translated", score)
        return echo

    def _play(self) -> bool:
        """Hand the translated audio to the sink in spoken order; True once the input has drained."""
        reorder = Reorderer(first_id=0)
        held: list[Any] = []  # in spoken order, waiting for the person to pause (half-duplex)
        while not self._stop.is_set():
            try:
                msg = self.pipeline.output.get(timeout=0.05)
            except Cancelled:
                return False
            self._collect()
            if msg is DRAIN:
                if self.incremental is not None:
                    self.incremental.tails.drop_pending()
                self._deliver_held(held)
                self.sink.drain(timeout=120.0)
                self._collect()
                return True
            if msg is not None:
                held.extend(reorder.push(msg))
            if held and not self._hold():
                self._deliver_held(held)
        return False

    def _deliver_held(self, held: list[Any]) -> None:
        """Deliver ``held`` in order, up to a tentative clause whose pause is not settled yet (it and
        what follows wait); the speech of a dropped one is not played, and nothing shows it."""
        tails = self.incremental.tails if self.incremental is not None else None
        while held:
            m = held[0]
            state = tails.state(m.utt.utt_id) if tails is not None else ""
            if state == "pending":
                return
            held.pop(0)
            if state == "dropped" and isinstance(m, AudioChunk):
                continue
            if state and isinstance(m, UtteranceEnd):
                tails.forget(m.utt.utt_id)
                if state == "dropped":
                    m.utt.skipped, m.utt.last_clause = DROPPED_TAIL, False
            self._deliver(m)

    def _hold(self) -> bool:
        """Half-duplex simultaneous mode: the translation is computed while the person speaks, and
        played once they pause (playing would close the microphone on their own words)."""
        return self.gate is not None and self.incremental is not None and self.segmenter.open_s > 0

    def _deliver(self, m: Any) -> None:
        if isinstance(m, AudioChunk):
            self.sink.write(m)
            self._wrote_audio = True
            if self.record_dir is not None:
                self._recorded.setdefault(m.utt.utt_id, []).append(m)
        elif isinstance(m, UtteranceEnd):
            self.sink.end(m.utt)
            self._record_output(m.utt.utt_id)

    def _record_output(self, utt_id: int) -> None:
        chunks = self._recorded.pop(utt_id, None)
        if chunks:
            audio = np.concatenate([c.samples for c in chunks])
            files.write_wav(self.record_dir / f"utt{utt_id:05d}_out.wav", audio, chunks[0].sample_rate)

    def _collect(self) -> None:
        for utt in self.sink.finished():
            if utt.transcribed is not None:  # the transcript pass, started as its translation went on, is nearly done
                utt.transcribed.wait(TRANSCRIPT_WAIT_S)
            rec = self.collector.record(utt)
            if self.captions is not None:
                self.captions.add(rec)
            if rec.error:
                self.result.failed += 1
                self.result.first_error = self.result.first_error or rec.error
                log.warning("utterance %d failed: %s", utt.utt_id, rec.error)
            elif rec.latency_s is not None:
                self.result.spoken += 1
                log.info("utterance %d: %.2f s to first audio: %s", utt.utt_id, rec.latency_s, rec.tgt_text)
            if self.on_record is not None:  # last: a stop signal may land in it
                self.on_record(rec)

    def _close(self, abort: bool, discard: bool = False) -> None:
        """Close everything; ``discard``: nothing was spoken, so leave no output file. An output
        that could not be finished is raised once the rest is closed: it must never pass as written."""
        def close_sink() -> None:
            if discard:
                self.sink.discard()
            else:
                self.sink.close(abort)

        if self.mode:
            self.engine.close_mode(self.mode)
        unfinished: Optional[S3tvrError] = None
        closers = [close_sink, self.source.close, self.collector.close, *([self.captions.close] if self.captions else [])]
        for closer in closers:
            try:
                closer()
            except S3tvrError as exc:
                unfinished = unfinished or exc
            except Exception:
                log.debug("close failed", exc_info=True)
        if unfinished is not None:
            raise unfinished


def live_source(device: Optional[str] = None, listen_to: str = "", duck_db: float = -15.0) -> Source:
    """The live input: a program's audio (``listen_to``), a PulseAudio/PipeWire source by name
    (``device`` "pulse:NAME", an output's monitor included), or a microphone through PortAudio."""
    if listen_to or (device or "").startswith("pulse:"):
        from s3tvr.live import pulse  # here, not in sources.py: its sources are Sources (pulse imports sources)

        if listen_to:
            return pulse.AppSource(listen_to, duck_db)
        return pulse.PulseSource(device.split(":", 1)[1])
    return MicSource(device)
