"""Fakes for every backend kind, with scripted delays and failures (as in livekit/agents).

They let tests and the soak script drive the real engine, segmenter and sinks at known speeds
without models. Delays and failures are keyed by utterance id (the ``utt_id`` the live stage
adapters pass each call): ``delays: [1.0, 0.1]`` makes utterance 0 take 1 s and utterance 1
0.1 s (the list repeats); a direct call counts as utterance 0.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Iterator, Optional, Sequence

import numpy as np

from s3tvr.audio import SAMPLE_RATE
from s3tvr.backends.kinds import NO_CONTEXT, AsrBackend, MtBackend, MtContext, MtPiece, TtsBackend, Word
from s3tvr.bounds import Range
from s3tvr.text import split_clauses


@dataclass
class FakeAsrConfig:
    delays: list[Annotated[float, Range(0, 60)]] = field(default_factory=lambda: [0.05])  # seconds per utterance id (the list repeats)
    fail_on: list = field(default_factory=list)  # utterance ids that raise
    text: str = "utterance {utt_id} lasting {seconds:.1f} seconds"  # what it hears: {utt_id} and {seconds} filled in
    # words() and hypothesis() also take this long per second of audio: a pass over the utterance so far
    # costs more as it grows, as Whisper's does
    delay_per_s: Annotated[float, Range(0, 10)] = 0.0
    sentence_words: Annotated[int, Range(1, 100)] = 8  # hypotheses end a sentence every this many words
    half_heard: bool = True  # a hypothesis's last word, cut short by the end of the audio, is unstable ("w4-")
    # talk mode: the language each utterance is "detected" in, by utterance id (the list repeats), e.g.
    # [es, en] for a conversation that alternates; empty: the first of the two languages asked about
    languages: list[str] = field(default_factory=list)


@dataclass
class FakeMtConfig:
    delays: list[Annotated[float, Range(0, 60)]] = field(default_factory=lambda: [0.02])  # per piece when it streams
    fail_on: list = field(default_factory=list)  # utterance ids that raise
    stream: bool = False  # translate_stream gives the translation clause by clause, as the LLM translator does


@dataclass
class FakeTtsConfig:
    delays: list[Annotated[float, Range(0, 60)]] = field(default_factory=lambda: [0.05])  # per chunk
    fail_on: list = field(default_factory=list)  # utterance ids that raise
    chunks: Annotated[int, Range(1, 100)] = 2  # per clause
    clauses: bool = True  # speak long sentences clause by clause, as Piper does (s3tvr.text.split_clauses)
    seconds_per_word: Annotated[float, Range(0, 10, above=True)] = 0.3  # at the natural rate (speak()'s rate 1.0)
    pause_s: Annotated[float, Range(0, 10)] = 0.0  # silence after the speech, as a TTS leaves after a sentence
    sample_rate: Annotated[int, Range(8000, 192000)] = 22050  # of the audio it makes, as a real voice has its own


def _delay(delays: list, utt_id: int) -> float:
    return float(delays[utt_id % len(delays)]) if delays else 0.0


class _Fake:
    thread_safe = True
    backend = "fake"

    def __init__(self, config: Any, src_lang: str, tgt_lang: str, device: str = "cpu", dtype: str = "auto"):
        super().__init__(src_lang, tgt_lang)
        self.config = config

    def _wait_or_fail(self, utt_id: int, scale: float = 1.0) -> None:
        time.sleep(_delay(self.config.delays, utt_id) * scale)
        if utt_id in self.config.fail_on:
            raise RuntimeError(f"scripted failure of utterance {utt_id}")


class FakeAsr(_Fake, AsrBackend):
    WORD_S = 0.4  # hypotheses hear one word per 0.4 s of audio, a sentence every sentence_words
    detects_language = True  # as scripted (languages)

    def language_of(self, audio: np.ndarray, languages: Sequence[str], *, utt_id: int = 0) -> tuple[str, float]:
        scripted = self.config.languages
        return (scripted[utt_id % len(scripted)] if scripted else languages[0]), 1.0

    def transcribe(self, audio: np.ndarray, language: str, *, utt_id: int = 0, hotwords: Sequence[str] = ()) -> str:
        self._wait_or_fail(utt_id)
        return self.config.text.format(utt_id=utt_id, seconds=len(audio) / SAMPLE_RATE)

    def words(self, audio: np.ndarray, hotwords: Sequence[str] = ()) -> list[Word]:
        """Scripted, stable words: a longer prefix of the same speech gives a longer prefix of
        the same words, as a real ASR mostly does; the last word is only half heard and unstable."""
        return self._numbered(audio, 0)

    def hypothesis(self, audio: np.ndarray, prompt: str = "", language: str = "", hotwords: Sequence[str] = ()) -> list[Word]:
        """As :meth:`words`, numbered on from the prompt's last word: a pass over a later part of the
        speech (a buffer cut at a word) continues the text it is prompted with, as Whisper does."""
        said = re.findall(r"w(\d+)", prompt)
        return self._numbered(audio, int(said[-1]) + 1 if said else 0)

    def _numbered(self, audio: np.ndarray, first: int) -> list[Word]:
        self._wait_or_fail(0)
        time.sleep(self.config.delay_per_s * len(audio) / SAMPLE_RATE)
        n = int(len(audio) / SAMPLE_RATE / self.WORD_S)
        every = self.config.sentence_words
        words = [Word(f"w{first + k}" + ("." if (first + k) % every == every - 1 else ""), k * self.WORD_S, (k + 0.8) * self.WORD_S)
                 for k in range(n)]
        if words and self.config.half_heard and (len(audio) / SAMPLE_RATE) % self.WORD_S < self.WORD_S / 2:
            words[-1] = Word(words[-1].text + "-", words[-1].start, words[-1].end)
        return words


class FakeMt(_Fake, MtBackend):

    def __init__(self, config: FakeMtConfig, src_lang: str, tgt_lang: str, device: str = "cpu", dtype: str = "auto"):
        super().__init__(config, src_lang, tgt_lang, device, dtype)
        self.streams = config.stream

    def translate(self, sentences: list[str], *, utt_id: int = 0) -> list[str]:
        self._wait_or_fail(utt_id)
        return [f"[{self.tgt_lang}] {s}" for s in sentences]

    def translate_stream(self, text: str, context: MtContext = NO_CONTEXT, *, source: str = "",
                         deadline: Optional[float] = None, utt_id: int = 0) -> Iterator[MtPiece]:
        """Streaming: the translation three words at a time, each piece after the scripted delay."""
        if not self.streams:
            yield from super().translate_stream(text, context, source=source, deadline=deadline, utt_id=utt_id)
            return
        words = f"[{self.tgt_lang}] {text}".split()
        for i in range(0, len(words), 3):
            self._wait_or_fail(utt_id)
            yield MtPiece(" ".join(words[i:i + 3]))


class FakeTts(_Fake, TtsBackend):
    speaking_rate = True

    def __init__(self, config: FakeTtsConfig, src_lang: str, tgt_lang: str, device: str = "cpu", dtype: str = "auto"):
        super().__init__(config, src_lang, tgt_lang, device, dtype)
        self.sample_rate = config.sample_rate

    def speak(self, text: str, voice: Any = None, speech: Optional[np.ndarray] = None, rate: float = 1.0, *,
              utt_id: int = 0) -> Iterator[np.ndarray]:
        """A tone (a pitch per utterance) as long as the words at ``seconds_per_word``, clause by
        clause as Piper speaks (each clause's chunks are ready before the next clause is made)."""
        cfg = self.config
        clauses = split_clauses(text) if cfg.clauses else [text]
        frequency = 220 + 20 * (utt_id % 10)
        for n, clause in enumerate(clauses):
            words = max(1, len(clause.split()))
            t = np.arange(int(words * cfg.seconds_per_word / rate * cfg.sample_rate)) / cfg.sample_rate
            tone = (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
            if n == len(clauses) - 1:
                tone = np.concatenate([tone, np.zeros(int(cfg.pause_s * cfg.sample_rate), dtype=np.float32)])
            for part in np.array_split(tone, cfg.chunks):
                self._wait_or_fail(utt_id)
                yield part


CONFIGS = {"asr": FakeAsrConfig, "mt": FakeMtConfig, "tts": FakeTtsConfig}
BACKENDS = {"asr": FakeAsr, "mt": FakeMt, "tts": FakeTts}
