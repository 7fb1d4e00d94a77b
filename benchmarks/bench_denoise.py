"""Does denoising help ASR? Word error with and without the denoise stage on noisy speech.

The shared noisy recordings (DNS challenge) come without transcripts, so noisy speech with a
known transcript is made here: the FLEURS English clips mixed with real background noise
(dishes, from Speech Commands; and the DNS real café recording, which includes babble) at 0, 5
and 10 dB SNR. Each mix goes through the real segmenter, optionally the denoiser, and
faster-whisper base. WER after lowercasing and removing punctuation (jiwer). Reads the shared data
(--data DIR; benchmarks/README.md).

    python benchmarks/bench_denoise.py [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import time

import jiwer
import noisereduce
import numpy as np
from faster_whisper import WhisperModel
from shared_data import add_argument, use

from s3tvr.audio.decode import load_audio
from s3tvr.audio.denoise import denoise
from s3tvr.config import DenoiseConfig, VadConfig
from s3tvr.live.messages import Block
from s3tvr.live.segmenter import Segmenter
from s3tvr.weights import bundled

NOISES = {"dishes": "noise/speechcommands_doing_the_dishes.wav", "cafe": "noise/dns1_ms_realrec_headset_cafe_spk2_3.wav"}
NORM = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()])


def mix(speech: np.ndarray, noise: np.ndarray, snr_db: float | None, lead_s: float = 2.0) -> np.ndarray:
    """Noise from ``lead_s`` before the speech to its end (the denoiser's profile needs a noise-only lead)."""
    lead = int(lead_s * 16000)
    speech = np.concatenate([np.zeros(lead, np.float32), speech / (np.abs(speech).max() + 1e-9) * 0.5])
    bed = np.resize(noise, len(speech))
    if snr_db is None:  # the clean recording, as a baseline
        return speech
    gain = np.sqrt(np.mean(speech[lead:] ** 2) / (np.mean(bed ** 2) + 1e-12) / 10 ** (snr_db / 10))
    return (speech + gain * bed).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_argument(ap)
    data = use(ap.parse_args().data)
    model = WhisperModel(str(bundled.whisper_base()), compute_type="int8")
    clips = [json.loads(line) for line in (data / "speech/fleurs/manifest.jsonl").read_text().splitlines()]
    clips = [c for c in clips if c["lang"] == "en"]
    cfg = DenoiseConfig()
    print(f"{'noise':<7}{'snr':>5}  {'WER raw':>8} {'WER denoised':>13}  denoise ms/s of audio")
    for name, path in NOISES.items():
        noise = load_audio(data / path)
        for snr in (0, 5, 10, 20, None):
            refs, raw, clean, cost, dur = [], [], [], 0.0, 0.0
            for c in clips:
                audio = mix(load_audio(data / "speech/fleurs" / c["audio"]), noise, snr)
                seg = Segmenter(VadConfig(), "en", "en")
                seg.setup()
                segs = seg.push(Block(audio, 0.0)) + seg.flush()
                for variant, out in (("raw", raw), ("clean", clean)):
                    texts = []
                    for s in segs:
                        x = s.audio
                        if variant == "clean":
                            t = time.perf_counter()
                            x = denoise(noisereduce, s.audio, s.noise, cfg.prop_decrease)
                            cost += time.perf_counter() - t
                            dur += len(x) / 16000
                        r, _ = model.transcribe(x, language="en", beam_size=1, condition_on_previous_text=False)
                        texts.append(" ".join(t.text for t in r))
                    out.append(NORM(" ".join(texts)))
                refs.append(NORM(c["transcript_fleurs_normalized"]))
            level = "clean" if snr is None else snr
            print(f"{name:<7}{level:>5}  {jiwer.wer(refs, raw):>8.3f} {jiwer.wer(refs, clean):>13.3f}  "
                  f"{cost / max(dur, 1e-9) * 1000:.0f}")


if __name__ == "__main__":
    main()
