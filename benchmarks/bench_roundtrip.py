"""Round-trip quality of the offline profile: Spanish speech -> s3tvr -> English speech -> Whisper
tiny.en -> BLEU and chrF against the FLORES English reference. Also the scores of the translated
text itself, so the loss in TTS + back-transcription shows. Reads the shared data's FLEURS clips
(--data DIR; benchmarks/README.md); ``--set`` overrides the offline profile's config as ``run``'s does.

    python benchmarks/bench_roundtrip.py [--clips es-000,es-002] [--set mt=apertium] [--data DIR]
    # the four clips of tests/test_offline.py, the LLM pinned as the test pins it:
    python benchmarks/bench_roundtrip.py --clips es-000,es-001,es-002,es-004 --set mt.pace_s=0 --set mt.late_s=0
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import sacrebleu
from faster_whisper import WhisperModel
from shared_data import add_argument, use

from s3tvr import Engine, load_config
from s3tvr.audio.decode import load_audio
from s3tvr.weights import bundled


def back_transcribe(model: WhisperModel, wav: Path) -> str:
    segments, _ = model.transcribe(load_audio(wav), language="en", beam_size=1, condition_on_previous_text=False)
    return " ".join(s.text.strip() for s in segments).strip()


def roundtrip(clips: list[dict], folder: Path, overrides: list[str]) -> list[dict]:
    """Translate each clip with the offline profile; returns the texts per clip."""
    listener = WhisperModel(str(bundled.whisper_tiny_en()), device="cpu", compute_type="int8")
    out = []
    engines: dict[str, Engine] = {}  # one per source language: its models load once
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            if clip["lang"] not in engines:
                config = load_config("offline", ["audio.realtime=false", *overrides], src_lang=clip["lang"], tgt_lang="en")
                engines[clip["lang"]] = Engine(config)
            wav = Path(tmp) / (Path(clip["audio"]).stem + ".en.wav")
            result = engines[clip["lang"]].session(input=str(folder / clip["audio"]), output=str(wav)).run()
            text = " ".join(r.tgt_text for r in result.records if r.tgt_text)
            out.append({"audio": clip["audio"], "ref": clip["ref_eng"], "text": text, "heard": back_transcribe(listener, wav)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", help="comma-separated stems like es-000 (default: every Spanish clip)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override, e.g. mt=apertium")
    add_argument(ap)
    args = ap.parse_args()
    fleurs = use(args.data) / "speech" / "fleurs"
    clips = [json.loads(line) for line in (fleurs / "manifest.jsonl").read_text().splitlines()]
    clips = [c for c in clips if c["lang"] == "es"]
    if args.clips:
        wanted = {f"fleurs-{c}.ogg" for c in args.clips.split(",")}
        clips = [c for c in clips if c["audio"] in wanted]
    rows = roundtrip(clips, fleurs, args.set)
    for r in rows:
        text_bleu = sacrebleu.sentence_bleu(r["text"], [r["ref"]]).score
        heard_bleu = sacrebleu.sentence_bleu(r["heard"], [r["ref"]]).score
        print(f"{r['audio']}: text BLEU {text_bleu:5.1f}  round-trip BLEU {heard_bleu:5.1f}  heard: {r['heard']}")
    refs = [[r["ref"] for r in rows]]
    bleu = sacrebleu.BLEU()
    text = bleu.corpus_score([r["text"] for r in rows], refs)
    heard = bleu.corpus_score([r["heard"] for r in rows], refs)
    chrf = sacrebleu.CHRF()
    text_chrf = chrf.corpus_score([r["text"] for r in rows], refs)
    heard_chrf = chrf.corpus_score([r["heard"] for r in rows], refs)
    print(f"corpus text BLEU {text.score:.1f} chrF {text_chrf.score:.1f}, round-trip (ASR-)BLEU {heard.score:.1f} "
          f"chrF {heard_chrf.score:.1f} over {len(rows)} clips")
    print(f"signature: {bleu.get_signature()}")


if __name__ == "__main__":
    main()
