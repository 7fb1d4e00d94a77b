"""What an ASR, an MT and a TTS backend are: a plain model API, and what each can do beyond it.

Every backend subclasses one of these. A backend is a model, not a pipeline stage: it takes
audio or text and gives text or audio, and never sees an utterance or a message. The live
pipeline wraps each one in a thin stage adapter (:mod:`s3tvr.live.stages`) that stamps the
results on the utterance; dubbing, eval and fine-tuning call the same methods directly.

    model = registry.create("asr", section, src_lang="es", tgt_lang="en")
    model.setup()                                   # loads the weights
    text = model.transcribe(audio16k, "es")         # "" when nothing was heard
    # MtBackend.translate(sentences) / translate_text(text) / translate_stream(text, context) -> pieces
    # TtsBackend.speak(text) -> chunks
    model.cleanup()

The optional abilities are explicit members with defaults, so callers ask ``asr.word_times`` or
``tts.clones_voice`` instead of probing with ``hasattr``, and anything that varies per session or
per utterance (a voice, a speaking rate) is an argument of the call, never written into a loaded
backend's config.

``utt_id`` (keyword, on the calls a live session makes): the utterance the call serves. Real
models ignore it; the scripted fakes (:mod:`s3tvr.backends.fake`) key their delays and failures by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from s3tvr.errors import InputError
from s3tvr.languages import join_sentences
from s3tvr.text import split_sentences
from s3tvr.text.glossary import NO_GLOSSARY, Checked, Glossary


@dataclass(frozen=True)
class Word:
    """A recognised word and where it was spoken, in seconds from the start of the audio given."""

    text: str
    start: float
    end: float
    probability: float = 1.0


class Model:
    """What every model has: a kind (``name``), a backend name, whether two threads may call it
    at once, and ``setup()``/``cleanup()`` to load and free its weights."""

    name = "model"  # its kind: asr | mt | tts (the name of the stage it runs as)
    backend = ""
    thread_safe = False  # may two threads call it at once? (If not, the engine calls it under a lock.)

    def __init__(self, src_lang: str, tgt_lang: str):
        self.src_lang, self.tgt_lang = src_lang, tgt_lang

    def setup(self) -> None:
        """Load the weights (once, before the first call)."""

    def cleanup(self) -> None:
        """Free the weights."""


class AsrBackend(Model):
    """Speech (16 kHz mono float32) in, text out."""

    name = "asr"
    languages: Optional[frozenset[str]] = None  # source languages it hears; None: any it was given
    word_times = False  # words() gives each word's time (and probability): dubbing and fine-tuning need them
    # Hears each call in the language it is given, so one loaded model serves sessions in several
    # languages (s3tvr serve); otherwise it hears only the language it was built for.
    any_source = False
    # A simultaneous pass over the calibration clip (s3tvr.backends.asr.pass_cost_s), when setup() already timed
    # one (faster-whisper's asr.model=auto): mode auto takes it rather than timing the same pass again.
    calibrated_pass_s: Optional[float] = None
    detects_language = False  # language_of() tells which of some languages is spoken (talk mode needs it)
    # With a task whose text is not in the language spoken (Whisper's translate task), also transcribe each
    # utterance in its own language (source_text: a second pass), so captions can show the speaker's words.
    transcript = False

    @property
    def output_language(self) -> str:
        """The language of its text: the source, or English for Whisper's translate task."""
        return self.src_lang

    def text_language(self, spoken: str) -> str:
        """The language of its text for speech in ``spoken``: that language, unless its task turns
        every language into one (Whisper's translate task: English)."""
        return spoken if self.output_language == self.src_lang else self.output_language

    def language_of(self, audio: np.ndarray, languages: Sequence[str], *, utt_id: int = 0) -> tuple[str, float]:
        """Which of ``languages`` is spoken in ``audio`` (16 kHz, one utterance), and its share of
        their probabilities (0.5 to 1 for two: how sure), for a backend that ``detects_language``."""
        raise NotImplementedError(f"ASR backend {self.backend} cannot tell languages apart")

    def transcribe(self, audio: np.ndarray, language: str, *, utt_id: int = 0, hotwords: Sequence[str] = ()) -> str:
        """The text of ``audio`` (16 kHz), one utterance, in :attr:`output_language`; "" when no
        words were heard. ``language``: what is spoken (an ``any_source`` backend hears it; others
        hear the language they were built for). ``hotwords``: words and names likely said (a
        glossary's: Glossary.hotwords), for a backend that can be biased towards them (others ignore them)."""
        raise NotImplementedError

    def source_text(self, audio: np.ndarray, language: str, *, utt_id: int = 0) -> str:
        """The text of ``audio`` in the language spoken (``language``), whatever the task: a second
        pass where :meth:`transcribe` gives another language (Whisper's translate task)."""
        if self.text_language(language) == language:
            return self.transcribe(audio, language, utt_id=utt_id)
        raise NotImplementedError(f"ASR backend {self.backend} cannot transcribe in the language spoken")

    def words(self, audio: np.ndarray, hotwords: Sequence[str] = ()) -> list[Word]:
        """The source-language words of ``audio`` (16 kHz) with their times, whatever the task
        (``hotwords``: as :meth:`transcribe`'s)."""
        raise NotImplementedError(f"ASR backend {self.backend} gives no word times")

    def hypothesis(self, audio: np.ndarray, prompt: str = "", language: str = "", hotwords: Sequence[str] = ()) -> list[Word]:
        """The words of ``audio`` (16 kHz) in :attr:`output_language`, with their times: one pass of
        simultaneous recognition over the speech heard so far. ``prompt``: the text already
        committed before this audio, for a model that can be conditioned on it; ``language``: the
        session's source language (an ``any_source`` backend's; others hear their own); ``hotwords``:
        as :meth:`transcribe`'s."""
        if self.output_language != self.src_lang:
            raise NotImplementedError(f"ASR backend {self.backend} cannot recognise incrementally in its task")
        return self.words(audio, hotwords)


@dataclass(frozen=True)
class MtContext:
    """What a translation is given besides its text: the session's earlier sentences, so names,
    gender and terms stay consistent, and, for a clause of a sentence still being spoken
    (simultaneous mode), the sentence's earlier clauses and the translation already spoken of
    them, which the new clause's translation continues."""

    before: tuple[tuple[str, str], ...] = ()  # (source, translation) of earlier sentences, oldest first
    sentence_source: str = ""  # this sentence's earlier clauses
    sentence_translation: str = ""  # what was spoken for them

    def then(self, source: str, translation: str, keep: int) -> "MtContext":
        """The context after ``source`` was translated as ``translation`` and its sentence ended:
        at least the last ``keep`` sentences. It grows to twice that before it is cut back, so most
        prompts start with the previous one and a model that keeps its last prompt's keys and
        values (the LLM translator) reads only the new sentence."""
        if keep <= 0:
            return MtContext()
        pairs = (*self.before, (source, translation)) if source and translation else self.before
        return MtContext(pairs if len(pairs) <= 2 * keep else pairs[-keep:])


NO_CONTEXT = MtContext()


@dataclass(frozen=True)
class MtPiece:
    """A piece of a translation as it is ready (a clause, or all of it), and what made it:
    ``note`` says when the model's reply was refused or late and another translator made it
    instead, or why the translation stopped early ("" when the model's own reply was used whole)."""

    text: str
    note: str = ""
    terms: int = 0  # glossary terms the translation renders (said on its last piece: MtBackend.translate_with)


class MtBackend(Model):
    """Text in one language to another."""

    name = "mt"
    in_context = False  # translate_stream uses its context (earlier sentences, a sentence's earlier clauses)
    streams = False  # translate_stream yields the first clause before the rest is translated
    can_shorten = False  # shorter() can translate again in fewer words (dubbing asks when a phrase does not fit)
    context_sentences = 0  # earlier sentences of a session its stage keeps for translate_stream's context
    any_source = False  # translates from the source language each translate_stream call names (one model, many sessions' languages)
    late_s: Optional[float] = None  # a live stage gives translate_stream this long for its first piece (None: no limit)
    # translate_stream/translate_text take glossary= and tell the model the terms (the LLM, in its prompt);
    # any other translator gets the terms behind placeholders it passes through (translate_with)
    takes_terms = False

    def translate(self, sentences: list[str], *, utt_id: int = 0) -> list[str]:
        """Each sentence translated, in order."""
        raise NotImplementedError

    def translate_text(self, text: str, context: MtContext = NO_CONTEXT, *, utt_id: int = 0) -> str:
        """``text`` split into sentences, translated (one call, so a batch where the model batches)
        and joined as the target language writes them; "" when nothing came out. ``context``: for
        a backend ``in_context`` (others translate each sentence alone)."""
        sentences = split_sentences(text)
        if not sentences:
            return ""
        return join_sentences([t for t in self.translate(sentences, utt_id=utt_id) if t], self.tgt_lang)

    def translate_stream(self, text: str, context: MtContext = NO_CONTEXT, *, source: str = "",
                         deadline: Optional[float] = None, utt_id: int = 0) -> Iterator[MtPiece]:
        """``text`` translated, in pieces as they are ready (a backend that ``streams`` yields its
        first clause early; others the whole translation). ``context``: for a backend ``in_context``;
        ``source``: the text's language, for a backend with ``any_source`` ("": its own);
        ``deadline``: a ``time.monotonic()`` past which a backend that may be late gives up on its
        own reply (and translates by faster means, said in the piece's note)."""
        translation = self.translate_text(text, utt_id=utt_id)
        if translation:
            yield MtPiece(translation)

    def translate_with(self, text: str, glossary: Glossary = NO_GLOSSARY, context: MtContext = NO_CONTEXT, *,
                       source: str = "", deadline: Optional[float] = None, utt_id: int = 0) -> Iterator[MtPiece]:
        """:meth:`translate_stream` keeping to ``glossary``: each piece with the terms' renderings
        (:meth:`Glossary.enforce`), then an empty last piece saying how many terms the whole
        translation renders and, in its note, any it lacks. The terms reach a model that
        ``takes_terms`` as such; any other translates the text with each term behind a placeholder."""
        if not glossary.found(text):
            yield from self.translate_stream(text, context, source=source, deadline=deadline, utt_id=utt_id)
            return
        asked, protected = (text, None) if self.takes_terms else glossary.protect(text)
        extra: dict[str, Any] = {"glossary": glossary} if self.takes_terms else {}
        said: list[str] = []
        for piece in self.translate_stream(asked, context, source=source, deadline=deadline, utt_id=utt_id, **extra):
            fixed = glossary.enforce(text, piece.text, protected).text if piece.text else ""
            said.append(fixed)
            yield MtPiece(fixed, piece.note)
        checked = glossary.enforce(text, " ".join(t for t in said if t))
        yield MtPiece("", checked.note, checked.applied)

    def translate_text_with(self, text: str, glossary: Glossary = NO_GLOSSARY, context: MtContext = NO_CONTEXT) -> Checked:
        """:meth:`translate_text` keeping to ``glossary``, as :meth:`translate_with` does (dubbing's, whole)."""
        if not glossary.found(text):
            return Checked(self.translate_text(text, context), 0)
        if self.takes_terms:
            return glossary.enforce(text, self.translate_text(text, context, glossary=glossary))  # type: ignore[call-arg]
        asked, protected = glossary.protect(text)
        return glossary.enforce(text, self.translate_text(asked, context), protected)

    def share_weights(self, other: "MtBackend") -> bool:
        """Before setup(): take ``other``'s loaded weights (other loads first) rather than loading a
        copy, where this backend can serve another pair over them (the LLM translator: one model, both
        directions of a conversation). False: setup() loads its own."""
        return False

    def shorter(self, source: str, translation: str, words: int) -> str:
        """A translation of ``source`` in at most about ``words`` words, for a backend that ``can_shorten``;
        "" when it cannot make one (the caller keeps ``translation``)."""
        return ""


class TtsBackend(Model):
    """Text to speech, streamed: :meth:`speak` yields mono float32 chunks at :attr:`sample_rate`
    as they are made, so playback can start on the first."""

    name = "tts"
    sample_rate = 22050  # of every chunk speak() yields; a backend sets its own (at the latest in setup())
    speaking_rate = False  # honours speak()'s rate (dubbing retakes a phrase faster when it must fit)
    clones_voice = False  # speaks in a voice given per call (from new_voice)
    own_voice: Sequence[Path] = ()  # recordings of the voice it clones by default (a fine-tuned model's speaker)
    voices: tuple[str, ...] = ()  # the fixed voices it ships, by name, its configured one first: speak(voice=NAME)

    @property
    def languages(self) -> frozenset[str]:
        """The languages it speaks."""
        return frozenset({self.tgt_lang})

    def speak(self, text: str, voice: Any = None, speech: Optional[np.ndarray] = None, rate: float = 1.0, *,
              utt_id: int = 0) -> Iterator[np.ndarray]:
        """``text`` spoken, in chunks (mono float32 at :attr:`sample_rate`); nothing for text without
        words. ``voice``: from :meth:`new_voice` (a cloning backend needs one); ``speech``: the
        utterance's own speech (16 kHz), from which a voice still learning refines itself;
        ``rate``: the speaking rate (1.0 natural), for a backend with ``speaking_rate``."""
        raise NotImplementedError

    def check_voice(self, clips: Sequence[str | Path] = (), speaker: str = "", owner: str = "", share: bool = False) -> list[Path]:
        """The voice asked for, checked before any model loads: the clips as paths, each of
        which must exist, and only for a backend that clones voices; a voice saved under a
        ``speaker`` name only for its owner (:meth:`new_voice`), else :class:`VoiceNotYours`."""
        if (clips or speaker) and not self.clones_voice:
            raise InputError(f"--voice and --speaker need a voice-cloning TTS, but this config uses {self.backend}: "
                             f"add --config stack or --set tts.backend=xtts")
        return voice_clips(clips)

    def new_voice(self, clips: Sequence[Path] = (), speaker: str = "", owner: str = "", share: bool = False) -> Any:
        """One session's voice, after setup(): from recordings of the speaker (``clips``), kept on
        disk under a ``speaker`` name, or learned from the session's own speech. None when the
        backend speaks in a fixed voice. A named voice belongs to the ``owner`` that first asked
        for the name ("": this machine's user; a server passes its clients'); another owner gets
        :class:`VoiceNotYours`, or with ``share`` the voice as saved, never learned further."""
        self.check_voice(clips, speaker, owner, share)
        return None


class VoiceNotYours(InputError):
    """A voice saved under a speaker name that another owner asked for: refused, never lent or extended."""


def voice_clips(paths: Sequence[str | Path]) -> list[Path]:
    """Recordings of a speaker as paths, each checked to exist."""
    clips = [Path(p).expanduser() for p in paths]
    for clip in clips:
        if not clip.is_file():
            raise InputError(f"voice clip {clip} not found: give one or more recordings of the speaker (--voice FILE)")
    return clips
