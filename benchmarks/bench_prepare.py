"""Dataset preparation for voice fine-tuning: does it keep the target speaker's clips and only
those, and how fast is it?

Recordings are made from the shared data (--data DIR; benchmarks/README.md): all 32 LJSpeech
clips (the target speaker, 222 s) interleaved, 1 s apart, with other voices (FLEURS en/es, JFK, the RealtimeSTT narrator, the
Silero German and Russian clips), under the real kitchen-noise recording (Speech Commands) at
``--snr`` dB. Every clip ``s3tvr finetune prepare`` makes is labelled by the part it lies on;
the reference is LJ001-0001, which is left out of the recordings.

    python benchmarks/bench_prepare.py [--snr 20] [--config offline] [--data DIR]
    python benchmarks/bench_prepare.py --denoise [--data DIR]

Prints: speech in and kept, target precision (kept clips that are hers) and recall (her
sentences kept), drops by reason, and the real-time factor (processing time / audio length).
With --denoise: how much of the speech band itself the denoiser removes (against the clean
clip) at each setting, under the kitchen noise at 20 dB, and without a noise profile on clean clips.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from shared_data import add_argument, root, use

from s3tvr.audio.decode import load_audio
from s3tvr.audio.denoise import denoise
from s3tvr.config import load_config
from s3tvr.finetune.prepare import PrepareOptions, Preparer, speech_loss_db

RATE = 22050


def _part(path: Path, max_s: float = 20.0) -> np.ndarray:
    audio = load_audio(path, RATE)[: int(max_s * RATE)]
    return audio / (np.abs(audio).max() + 1e-9) * 0.5


def recordings(folder: Path, snr_db: float) -> dict[str, list[tuple[str, float, float]]]:
    target = sorted((root() / "speech/ljspeech").glob("*.flac"))[1:]
    others = (sorted((root() / "speech/fleurs").glob("*.ogg")) + [root() / "speech/jfk.flac"]
              + [root() / f"speech/long/{n}.wav" for n in ("realtimestt_asr-reference", "silero_de", "silero_ru")])
    noise = load_audio(root() / "noise/speechcommands_doing_the_dishes.wav", RATE)
    where: dict[str, list[tuple[str, float, float]]] = {}
    for n in range(3):  # three sessions, a third of her clips each
        parts = [("target", _part(p)) for p in target[n::3]]
        for i, other in enumerate(others[n::3]):
            parts.insert(2 * i + 1, ("other", _part(other)))
        gap = np.zeros(RATE, np.float32)
        audio, marks, t = [gap], [], 1.0
        for label, part in parts:
            audio += [part, gap]
            marks.append((label, t, t + len(part) / RATE))
            t += len(part) / RATE + 1.0
        speech = np.concatenate(audio)
        bed = np.resize(np.roll(noise, n * 7 * RATE), len(speech))
        level = np.concatenate([p for label, p in parts if label == "target"])
        gain = np.sqrt(np.mean(level[np.abs(level) > 0.01] ** 2) / np.mean(bed ** 2) / 10 ** (snr_db / 10))
        mixed = speech + gain * bed
        sf.write(folder / f"session{n}.wav", mixed / max(1.0, np.abs(mixed).max() / 0.95), RATE)
        where[f"session{n}.wav"] = marks
    return where


def denoise_loss() -> dict:
    """Speech-band energy the denoiser removes from the speech itself (dB), per setting."""
    import noisereduce

    kitchen = load_audio(root() / "noise/speechcommands_doing_the_dishes.wav", RATE)
    clean = _part(root() / "speech/ljspeech/LJ001-0005.flac")
    bed = np.resize(kitchen, len(clean) + 3 * RATE)
    gain = np.sqrt(np.mean(clean[np.abs(clean) > 0.01] ** 2) / np.mean(bed ** 2) / 10 ** (20 / 10))
    noise, profile = gain * bed[: len(clean)], gain * bed[len(clean):]
    out = {}
    for strength, n_std in ((0.75, 1.5), (0.5, 1.0)):
        cleaned = denoise(noisereduce, clean + noise, profile, strength, RATE, n_std)
        out[f"20 dB kitchen, prop_decrease {strength}, {n_std} std"] = round(speech_loss_db(clean, cleaned, np.zeros(0), RATE), 2)
    losses = []
    for path in sorted((root() / "speech/ljspeech").glob("*.flac"))[:8]:  # tight-cut clean clips: no noise profile
        audio = _part(path)
        losses.append(speech_loss_db(audio, denoise(noisereduce, audio, np.zeros(0, np.float32), 0.5, RATE, 1.0), np.zeros(0), RATE))
    out["clean LJSpeech clips, no profile (non-stationary), min-max"] = [round(min(losses), 2), round(max(losses), 2)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snr", type=float, default=20.0, help="kitchen noise this many dB below the speech")
    parser.add_argument("--config", default="offline", help="the preset whose ASR transcribes")
    parser.add_argument("--denoise", action="store_true", help="measure the denoiser's speech loss instead")
    add_argument(parser)
    args = parser.parse_args()
    use(args.data)
    if args.denoise:
        print(json.dumps(denoise_loss(), indent=1))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "recordings"
        folder.mkdir()
        where = recordings(folder, args.snr)
        seconds = sum(sf.info(p).duration for p in folder.iterdir())
        config = load_config(args.config, [], src_lang="en", tgt_lang="en")
        start = time.perf_counter()
        result = Preparer(config, [folder], Path(tmp) / "dataset", [root() / "speech/ljspeech/LJ001-0001.flac"],
                          PrepareOptions(language="en")).run()
        elapsed = time.perf_counter() - start
    labelled = []
    for clip in result.clips:
        marks = where[Path(clip.source).name]
        overlap, label = max((min(clip.end, e) - max(clip.start, s), lab) for lab, s, e in marks)
        labelled.append((label if overlap > 0 else "silence", clip))
    kept = [(label, c) for label, c in labelled if c.reason is None]
    her = sum(1 for _, s, e in (m for marks in where.values() for m in marks) if _ == "target")
    heard = {(c.source, round(s, 1)) for label, c in kept if label == "target"
             for lab, s, e in where[Path(c.source).name] if lab == "target" and min(c.end, e) - max(c.start, s) > 0}
    report = {
        "snr_db": args.snr,
        "audio_min": round(seconds / 60, 2),
        "kept_min": result.report["minutes_kept"],
        "clips": len(labelled),
        "kept": len(kept),
        "target_precision": round(sum(1 for label, _ in kept if label == "target") / max(len(kept), 1), 3),
        "target_recall": round(len(heard) / her, 3),
        "drops": {reason: d["clips"] for reason, d in result.report["drops"].items()},
        "other_voices_kept": sum(1 for label, _ in kept if label == "other"),
        "seconds": round(elapsed, 1),
        "real_time_factor": round(elapsed / seconds, 3),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
