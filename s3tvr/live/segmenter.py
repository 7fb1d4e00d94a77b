"""Streaming speech segmenter around Silero VAD.

Audio arrives in blocks; Silero scores each 512-sample window (32 ms at 16 kHz). Speech starts
when a window scores above ``threshold`` and ends after ``endpoint_ms`` below ``neg_threshold``
(``long_endpoint_ms`` once the utterance is longer than ``long_after_s``: a long sentence ends at
its next breath instead of waiting for a full pause).
Each utterance keeps ``preroll_ms`` from before its start, so the first syllable is never
clipped, and bursts shorter than ``min_speech_ms`` are dropped. A speaker who never pauses is
split at the quietest window once a segment reaches ``max_segment_s``. With ``turn`` (off by
default), Smart Turn v3.2 (s3tvr/live/turn.py) is asked once per pause, after ``turn_silence_ms``,
whether the speaker has finished: yes ends the utterance, no waits up to ``turn_max_ms``.

Quiet input (a distant microphone, recordings peaking near -60 dBFS) is brought up by a slow
automatic gain before Silero sees it, and every segment is peak-normalised before ASR.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any, Optional

import numpy as np

from s3tvr.audio import SAMPLE_RATE
from s3tvr.config import VadConfig
from s3tvr.errors import SetupError
from s3tvr.live.messages import Block, SpeechSegment, UttInfo

log = logging.getLogger(__name__)

WINDOW = 512
WINDOW_S = WINDOW / SAMPLE_RATE
SILENCE_FLOOR = 1e-5  # -100 dBFS: digital silence, never amplified
TARGET_PEAK = 0.5
PEAK_RELEASE = 10 ** (-6 / 20 / (1.0 / WINDOW_S))  # the gain's peak memory falls 6 dB a second
TURN_WINDOWS = int(8 / WINDOW_S) + 1  # Smart Turn hears the last 8 s


def load_vad(onnx: bool) -> Any:
    """A Silero VAD model (ONNX or TorchScript); its stream state belongs to whoever calls it."""
    try:
        from silero_vad import load_silero_vad
    except ImportError:
        raise SetupError("Silero VAD is not installed: pip install silero-vad") from None
    return load_silero_vad(onnx=onnx)


class Segmenter:
    def __init__(self, config: VadConfig, src_lang: str, tgt_lang: str, noise_profile_s: float = 2.0):
        self.config = config
        self.noise_profile_s = noise_profile_s
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.neg_threshold = config.neg_threshold if config.neg_threshold is not None else max(0.0, config.threshold - 0.15)
        self.endpoint_windows = max(1, int(round(config.endpoint_ms / 1000 / WINDOW_S)))
        self.long_endpoint_windows = max(1, min(self.endpoint_windows, int(round(config.long_endpoint_ms / 1000 / WINDOW_S))))
        self.long_windows = int(config.long_after_s / WINDOW_S)
        self.tail_windows = min(self.endpoint_windows, int(round(config.tail_ms / 1000 / WINDOW_S)))
        self.min_speech_windows = max(1, int(round(config.min_speech_ms / 1000 / WINDOW_S)))
        self.max_windows = max(self.endpoint_windows * 2, int(config.max_segment_s / WINDOW_S))
        self.max_gain = 10 ** (config.max_gain_db / 20)
        self.turn_windows = max(1, int(round(config.turn_silence_ms / 1000 / WINDOW_S)))
        self.turn_max_windows = max(self.turn_windows, int(round(config.turn_max_ms / 1000 / WINDOW_S)))
        self.model = None
        self.turn: Any = None  # Smart Turn (s3tvr/live/turn.py) when config.turn
        self.next_id = 0
        self._reset_stream()

    def setup(self, model: Any = None, turn: Any = None) -> None:
        """Use ``model`` (a Silero VAD of this segmenter's own: it keeps stream state), or load one;
        with config.turn, ``turn`` (a SmartTurn: stateless, so an engine's sessions share one), or load one."""
        self.model = model if model is not None else load_vad(self.config.onnx)
        if self.config.turn:
            from s3tvr.live import turn as smart_turn

            self.turn = turn if turn is not None else smart_turn.load()
        import torch  # silero-vad brings it

        self._torch = torch

    def _reset_stream(self) -> None:
        self._carry = np.zeros(0, dtype=np.float32)
        self._index = 0  # windows seen: the input timeline
        self._peak = 0.0
        preroll = int(round(self.config.preroll_ms / 1000 / WINDOW_S))
        self._preroll: collections.deque = collections.deque(maxlen=preroll + 1)  # + the window that starts speech
        self._noise: collections.deque = collections.deque(maxlen=max(1, int(self.noise_profile_s / WINDOW_S)))
        self._in_speech = False
        self._windows: list[np.ndarray] = []  # the open segment, preroll included
        self._probs: list[float] = []
        self._arrivals: list[float] = []
        self._start_index = 0  # window index of self._windows[0]
        self._first_speech = 0  # offsets into self._windows
        self._last_speech = 0
        self._silence = 0
        self._finished = False  # Smart Turn's verdict on the current pause

    def push(self, block: Block) -> list[SpeechSegment]:
        data = np.concatenate([self._carry, block.samples.astype(np.float32, copy=False)])
        out: list[SpeechSegment] = []
        n = len(data) // WINDOW
        for k in range(n):
            seg = self._window(data[k * WINDOW:(k + 1) * WINDOW], block.t_arrival)
            if seg is not None:
                out.append(seg)
        self._carry = data[n * WINDOW:]
        return out

    def open_speech(self) -> Optional[tuple[float, float, np.ndarray]]:
        """Simultaneous mode: the utterance being spoken, so far: (where it starts on the input
        timeline, exactly its finished segment's ``seg_start_s``; the wall clock its speech started;
        its audio normalised as a finished segment's is). None between utterances."""
        if not self._in_speech:
            return None
        audio = np.concatenate(self._windows)
        peak = float(np.abs(audio).max())
        gain = 1.0 if peak < SILENCE_FLOOR else min(self.max_gain, 0.9 / peak)
        return (self.open_start_s, self._arrivals[self._first_speech],
                (audio * gain).astype(np.float32))

    @property
    def open_s(self) -> float:
        """Seconds of the utterance being spoken (0 between utterances): cheap, for deciding when to look."""
        return len(self._windows) * WINDOW_S if self._in_speech else 0.0

    @property
    def open_start_s(self) -> float:
        """Where the utterance being spoken starts on the input timeline (its segment's ``seg_start_s``)."""
        return self._start_index * WINDOW_S

    @property
    def pause_s(self) -> float:
        """Seconds of silence after the last speech of the utterance being spoken (0 between utterances)."""
        return self._silence * WINDOW_S if self._in_speech else 0.0

    def speech_end(self) -> Optional[tuple[float, float]]:
        """Where the speech of the open utterance ends so far: (its finished segment's ``seg_end_s`` if
        no more speech comes, the wall clock its last speech sample entered). None between utterances,
        or while too little speech was heard for a segment (min_speech_ms: it would be dropped)."""
        if not self._in_speech or self._last_speech - self._first_speech + 1 < self.min_speech_windows:
            return None
        return (self._start_index + self._last_speech + 1) * WINDOW_S, self._arrivals[self._last_speech]

    def flush(self) -> list[SpeechSegment]:
        """End of input: release the open segment, if it holds enough speech."""
        out = []
        if self._in_speech:
            seg = self._cut(self._last_speech + 1 + self.tail_windows)
            if seg is not None:
                out.append(seg)
        self._reset_stream()
        return out

    def _score(self, window: np.ndarray) -> float:
        peak = float(np.abs(window).max())
        self._peak = max(peak, self._peak * PEAK_RELEASE)
        gain = 1.0 if self._peak < SILENCE_FLOOR else min(self.max_gain, max(1.0, TARGET_PEAK / self._peak))
        with self._torch.no_grad():
            return float(self.model(self._torch.from_numpy(window * gain), SAMPLE_RATE))

    def _window(self, window: np.ndarray, t: float) -> Optional[SpeechSegment]:
        prob = self._score(window)
        index = self._index
        self._index += 1
        cfg = self.config
        if not self._in_speech:
            self._preroll.append(window)
            if prob < self.neg_threshold:
                self._noise.append(window)
            if prob >= cfg.threshold:
                self._in_speech = True
                self._windows = list(self._preroll)
                self._probs = [0.0] * (len(self._windows) - 1) + [prob]
                self._arrivals = [t] * len(self._windows)
                self._start_index = index - len(self._windows) + 1
                self._first_speech = self._last_speech = len(self._windows) - 1
                self._silence = 0
            return None
        self._windows.append(window)
        self._probs.append(prob)
        self._arrivals.append(t)
        if prob >= cfg.threshold:
            self._last_speech = len(self._windows) - 1
            self._silence = 0
        elif prob < self.neg_threshold or self._silence:
            self._silence += 1
        long = self._last_speech - self._first_speech >= self.long_windows
        if self._silence and self._ended(long):
            return self._cut(self._last_speech + 1 + self.tail_windows)
        if len(self._windows) >= self.max_windows:
            return self._split()
        return None

    def _ended(self, long: bool) -> bool:
        """Does the pause of ``self._silence`` windows end the utterance? A fixed silence, or with
        Smart Turn's verdict, asked once per pause after turn_silence_ms (up to turn_max_ms; past
        long_after_s, long_endpoint_ms still ends it)."""
        if self.turn is None:
            return self._silence >= (self.long_endpoint_windows if long else self.endpoint_windows)
        if self._silence == self.turn_windows:
            audio = np.concatenate(self._windows[-TURN_WINDOWS:])
            self._finished = self.turn.probability(audio) > self.config.turn_threshold
        cap = min(self.turn_max_windows, self.long_endpoint_windows) if long else self.turn_max_windows
        return self._silence >= self.turn_windows and self._finished or self._silence >= cap

    def _split(self) -> Optional[SpeechSegment]:
        """Cut at the quietest window of the segment's second half; the rest stays open."""
        half = self._first_speech + (len(self._windows) - self._first_speech) // 2
        probs = np.array(self._probs[half:])
        energy = np.array([float(np.square(w).mean()) for w in self._windows[half:]])
        quiet = np.flatnonzero(probs <= probs.min() + 1e-3)
        at = half + int(quiet[np.argmin(energy[quiet])])
        keep_windows, keep_probs, keep_arrivals = self._windows[at:], self._probs[at:], self._arrivals[at:]
        self._last_speech = max(self._first_speech, at - 1)
        seg = self._cut(at, reset=False)
        self._windows, self._probs, self._arrivals = keep_windows, keep_probs, keep_arrivals
        self._start_index += at
        self._first_speech = 0
        loud = [i for i, p in enumerate(keep_probs) if p >= self.config.threshold]
        self._last_speech = loud[-1] if loud else 0
        self._in_speech = True
        return seg

    def _cut(self, end: int, reset: bool = True) -> Optional[SpeechSegment]:
        end = min(end, len(self._windows))
        speech_windows = self._last_speech - self._first_speech + 1
        seg = None
        if speech_windows >= self.min_speech_windows:
            audio = np.concatenate(self._windows[:end])
            noise = np.concatenate(list(self._noise)) if self._noise else np.zeros(0, dtype=np.float32)
            peak = float(np.abs(audio).max())
            gain = 1.0 if peak < SILENCE_FLOOR else min(self.max_gain, 0.9 / peak)
            utt = UttInfo(
                utt_id=self.next_id, src_lang=self.src_lang, tgt_lang=self.tgt_lang,
                seg_start_s=self._start_index * WINDOW_S,
                seg_end_s=(self._start_index + self._last_speech + 1) * WINDOW_S,  # as speech_end() says
                t_speech_end=self._arrivals[self._last_speech],
                t_vad_emit=time.monotonic(),
                t_speech_start=self._arrivals[self._first_speech],
            )
            self.next_id += 1
            seg = SpeechSegment(utt, (audio * gain).astype(np.float32), (noise * gain).astype(np.float32))
            utt.speech = seg.audio
        if reset:
            trailing = self._windows[end:]
            self._in_speech = False
            self._windows, self._probs, self._arrivals = [], [], []
            self._preroll.extend(trailing)
            self._silence = 0
        return seg


def speech_regions(audio: np.ndarray, vad: VadConfig, model: Any = None) -> list[tuple[float, float]]:
    """Where there is speech in 16 kHz ``audio``: (start, end) in seconds, pre-roll included.
    ``model``: a Silero VAD with fresh state (Engine.vad_model()); None loads one."""
    segmenter = Segmenter(vad, "xx", "xx", noise_profile_s=0.0)
    segmenter.setup(model)
    regions = []
    step = SAMPLE_RATE // 10
    for i in range(0, len(audio), step):
        regions += [(s.utt.seg_start_s, s.utt.seg_end_s) for s in segmenter.push(Block(audio[i:i + step], 0.0))]
    regions += [(s.utt.seg_start_s, s.utt.seg_end_s) for s in segmenter.flush()]
    return regions
