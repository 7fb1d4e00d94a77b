"""Smart Turn v3.2: has the speaker finished their turn? Judged from the sound of the speech
(intonation, a trailing-off word), not from the words, so it works in any of its 23 languages.

Pipecat's model (BSD-2-Clause, github.com/pipecat-ai/smart-turn): a Whisper-tiny encoder with a
classifier head, int8-quantised to 8.7 MB, that reads the last 8 s of 16 kHz audio as Whisper
log-mel features and gives the probability that the turn is complete (pipecat's threshold: 0.5).
The weights ship inside the ``pipecat-ai`` wheel, which ``setup.sh`` installs without its
dependencies (only the ONNX file is used; pipecat itself is never imported).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from s3tvr.audio import SAMPLE_RATE
from s3tvr.errors import SetupError, brief

ONNX_NAME = "smart-turn-v3.2-cpu.onnx"
PIP = "pip install --no-deps pipecat-ai==1.14.0"
SECONDS = 8  # the model hears the last 8 s; shorter audio is padded with silence in front
N_FFT, HOP, N_MELS = 400, 160, 80
FRAMES = SECONDS * SAMPLE_RATE // HOP  # 800


def model_path() -> Path:
    """smart-turn-v3.2-cpu.onnx inside the installed pipecat package, found without importing it
    (its dependencies are not installed)."""
    spec = importlib.util.find_spec("pipecat")
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / "audio" / "turn" / "smart_turn" / "data" / ONNX_NAME
        if path.is_file():
            return path
    raise SetupError(f"Smart Turn's weights ({ONNX_NAME}) come in the pipecat-ai wheel: {PIP} (./setup.sh does), or vad.turn=false")


def _mel_filters() -> np.ndarray:
    """Whisper's 80 Slaney-scale mel filters for a 400-point FFT at 16 kHz, (201, 80)."""
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return np.where(f < 1000, 3 * f / 200, 15 + np.log(np.maximum(f, 1000) / 1000) * 27 / np.log(6.4))

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return np.where(m < 15, 200 * m / 3, 1000 * np.exp((m - 15) * np.log(6.4) / 27))

    edges = mel_to_hz(np.linspace(0, hz_to_mel(np.array(SAMPLE_RATE / 2)), N_MELS + 2))
    ramps = edges[:, None] - np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)[None, :]
    rise, fall = -ramps[:-2] / np.diff(edges)[:-1, None], ramps[2:] / np.diff(edges)[1:, None]
    return (np.maximum(0, np.minimum(rise, fall)) * (2 / (edges[2:] - edges[:-2]))[:, None]).T


MEL = _mel_filters().astype(np.float32)
HANN = np.hanning(N_FFT + 1)[:-1].astype(np.float32)


def features(audio: np.ndarray) -> np.ndarray:
    """(80, 800) Whisper log-mel features of the last 8 s of ``audio``, as pipecat computes them
    (transformers' WhisperFeatureExtractor(chunk_length=8), do_normalize=True). Against pipecat's
    own numpy copy of that extractor: within 5e-6 on the FLEURS clips, under the model's own
    noise (features 2e-6 apart move its int8 output by a quantisation step near 0.5)."""
    x = np.asarray(audio, dtype=np.float32)[-SECONDS * SAMPLE_RATE:]
    x = np.pad(x, (SECONDS * SAMPLE_RATE - len(x), 0))
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    frames = sliding_window_view(np.pad(x, N_FFT // 2, mode="reflect"), N_FFT)[::HOP][:FRAMES]  # Whisper drops the last
    power = np.abs(np.fft.rfft(frames * HANN, axis=-1)) ** 2
    mel = np.log10(np.maximum(power @ MEL, 1e-10)).T
    return ((np.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0).astype(np.float32)


class SmartTurn:
    """The end-of-turn model. Thread-safe once set up: it keeps no state between calls and an
    onnxruntime session may be run from several threads at once, so one instance serves every
    session of an engine (``Engine.load("turn")`` loads it, ``cleanup()`` frees it).

    One call (features + model, 8 s of audio) on this project's 2-core CPU, one intra-op thread:
    about 80 ms with the CPU idle, 135-145 ms while other work runs (features: 5-8 ms of it). Two
    threads: 47-60 ms idle but 170-225 ms under the same load, and in a run ASR and TTS keep the
    other core busy, so one thread, as pipecat does. The segmenter calls it at most once a pause."""

    def __init__(self, path: Optional[Path] = None, threads: int = 1):
        self.path, self.threads = path, threads
        self.session = None

    def setup(self) -> None:
        import onnxruntime as ort

        path = self.path or model_path()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = self.threads, 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise SetupError(f"Smart Turn model {path} could not be loaded ({brief(exc)}): reinstall it: {PIP}") from exc

    def probability(self, audio16k: np.ndarray) -> float:
        """The probability that the speaker has finished, from the last 8 s of 16 kHz mono ``audio16k``
        (the utterance up to now, its trailing silence included; its level does not matter)."""
        (out,) = self.session.run(None, {"input_features": features(audio16k)[None]})
        return float(out.reshape(-1)[0])

    def cleanup(self) -> None:
        self.session = None


def load(path: Optional[Path] = None) -> SmartTurn:
    """A Smart Turn model, set up."""
    model = SmartTurn(path)
    model.setup()
    return model
