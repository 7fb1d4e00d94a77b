"""Whisper's encoder reads the speech plus a margin, not 30 s, and hears the same words and times."""

import difflib
import math
import re

import jiwer
import numpy as np
import pytest

from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import load_audio

CLIP = "fleurs-es-001.ogg"  # 20.2 s of Spanish


@pytest.fixture(scope="module")
def whisper():
    pytest.importorskip("faster_whisper")
    from s3tvr.backends.asr import faster_whisper as fw

    backends = {}
    for name, config in (("cut", fw.Config(cpu_threads=2)), ("full", fw.Config(cpu_threads=2, full_window=True))):
        backends[name] = fw.Backend(config, "es", "en")
        backends[name].setup()
    return backends


@pytest.mark.slow
def test_the_encoder_reads_the_audio_plus_the_margin(whisper):
    from s3tvr.backends.asr.faster_whisper import with_window

    for seconds in (2.0, 10.3, 29.5, 45.0):
        audio = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
        window_s = min(30, math.ceil(seconds + whisper["cut"].config.window_margin_s))
        padded = np.zeros((1, 80, 3000), np.float32)  # what faster-whisper hands the encoder: 30 s of frames
        # The encoder halves the frames (its second convolution has stride 2).
        model = whisper["cut"].model
        assert with_window(model, audio).encode(padded).shape[1] == window_s * 100 // 2
        assert model.encode(padded).shape[1] == 1500  # the model itself: the full window (asr.full_window)


@pytest.mark.slow
def test_a_cut_window_hears_the_words_of_the_full_window_at_the_same_times(data, whisper):
    audio = load_audio(data / CLIP)
    cut, full = whisper["cut"].words(audio), whisper["full"].words(audio)
    # int8 kernels differ by CPU family (AVX-512 or not), so the two passes may differ in a letter's
    # case or a comma ("Internet," / "internet,"): compared as a listener would, by word error rate.
    assert len(cut) > 30 and word_error(cut, full) <= 0.05, (texts(cut), texts(full))
    # Times come from the decoder's attention over the encoder's frames, which the window changes a
    # little. Measured on this clip: 48 of 51 words within 20 ms (two frames), one 40 ms; one boundary between
    # two words ("contexto | de") 0.30 s apart. Compared on the words both passes heard.
    shifts = [max(abs(a.start - b.start), abs(a.end - b.end)) for a, b in same_words(cut, full)]
    assert max(shifts) <= 0.35 and sum(s <= 0.025 for s in shifts) >= 0.9 * len(cut), shifts
    head = audio[: 5 * SAMPLE_RATE]  # a simultaneous pass over the first 5 s: a 7 s window
    assert word_error(whisper["cut"].hypothesis(head), whisper["full"].hypothesis(head)) <= 0.1


def texts(words) -> list[str]:
    """Words as a listener compares them: lower case, without punctuation."""
    return [re.sub(r"[^\w']", "", w.text.lower()) for w in words]


def word_error(words, reference) -> float:
    return jiwer.wer(" ".join(texts(reference)), " ".join(texts(words)))


def same_words(words, reference):
    """The pairs of words both passes heard, aligned."""
    a, b = texts(words), texts(reference)
    for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        yield from zip(words[block.a:block.a + block.size], reference[block.b:block.b + block.size])
