"""What ``s3tvr eval`` shows: a terminal table, a JSON file with every figure, a PNG."""

from __future__ import annotations

import math
from pathlib import Path

from s3tvr import files
from s3tvr.eval.runner import EvalResult


def _f(x, fmt: str = "{:.2f}") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def format_table(r: EvalResult) -> str:
    lat, mem = r.latency, r.memory
    lines = [
        f"s3tvr eval {r.pair}: {len(r.clips)} clips, {lat['utterances']} utterances ({lat['spoken']} spoken)",
        "",
        "quality",
        f"  ASR-BLEU      {_f(r.asr_bleu['bleu'], '{:.1f}'):>7}   chrF {_f(r.asr_bleu['chrf'], '{:.1f}')}   (judge: {r.judge})",
        f"  text BLEU     {_f(r.text_bleu['bleu'], '{:.1f}'):>7}   chrF {_f(r.text_bleu['chrf'], '{:.1f}')}   (the translation before TTS)",
        f"  source WER    {_f(r.source_wer, '{:.3f}'):>7}   ({r.source_wer_how}; {r.normalisation})",
        f"  speaker sim.  {_f(r.speaker_similarity, '{:.3f}'):>7}   (Resemblyzer cosine, input vs output voice)",
        f"  signatures: {r.asr_bleu['bleu_signature']} | {r.asr_bleu['chrf_signature']}",
        "",
        "speed (end of speech -> first translated audio)",
        f"  p50 {_f(lat['p50_s'])} s   p90 {_f(lat['p90_s'])} s   max {_f(lat['max_s'])} s   mean {_f(lat['mean_s'])} s",
        "  per stage (mean s): " + "  ".join(f"{k} {v:.2f}" for k, v in lat["stage_mean_s"].items()),
        f"  real-time factor {_f(lat['rtf'])}   overhead ratio p50 {_f(lat['overhead_p50'])} p90 {_f(lat['overhead_p90'])}",
        f"  CPU seconds per second of speech {_f(lat.get('cpu_s_per_audio_s'))} (the system's process and its helpers)",
        "",
        "speed as the field reports it (per source utterance, s; LAAL/YAAL by OmniSTEval on words timed as heard)",
        *(f"  {name:<12} p50 {_f(m['p50']):>6}   mean {_f(m['mean']):>6}   p90 {_f(m['p90']):>6}   ({m['n']} source utterances)"
          for name, m in lat.get("field", {}).items()),
        "  EndOffset's parts (mean s, adding up to its mean): "
        + "  ".join(f"{name} {_f(m['mean'])}" for name, m in lat.get("end_parts", {}).items()),
        "",
        "memory (MiB)",
        "  " + "  ".join(f"{k} {v:.0f}" for k, v in mem.items()),
        "",
        f"{'clip':<22}{'BLEU':>6}{'sim':>7}  heard",
    ]
    for c in r.clips:
        lines.append(f"{c.audio[:21]:<22}{c.bleu:>6.1f}{_f(c.speaker_similarity, '{:.3f}'):>7}  {c.heard[:70]}")
    return "\n".join(lines)


def write_json(r: EvalResult, path: Path) -> None:
    files.write_json(path, r.to_dict())


def plot(r: EvalResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    latencies = r.latency["latencies_s"]
    if latencies:
        axes[0].hist(latencies, bins=min(20, max(5, len(latencies))), color="tab:blue")
    axes[0].set_title("end of speech → first audio")
    axes[0].set_xlabel("seconds")
    stages = r.latency["stage_mean_s"]
    axes[1].bar(list(stages), list(stages.values()), color="tab:orange")
    axes[1].set_title("mean compute per stage (s)")
    axes[2].bar(range(len(r.clips)), [c.bleu for c in r.clips], color="tab:green")
    axes[2].set_xticks(range(len(r.clips)), [Path(c.audio).stem[-6:] for c in r.clips], rotation=45)
    axes[2].set_title(f"ASR-BLEU per clip (corpus {r.asr_bleu['bleu']:.1f})")
    fig.tight_layout()
    files.write_png(path, fig)
    plt.close(fig)
