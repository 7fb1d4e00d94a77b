"""What dataset preparation kept and dropped: the report in dataset.json, a table, a length histogram."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from s3tvr import files


def summary(clips: list, train: list, evals: list, options: Any, inputs: list[str], references: list[str]) -> dict[str, Any]:
    kept = train + evals
    drops, dropped_s = collections.Counter(), collections.Counter()
    for c in clips:
        if c.reason:
            drops[c.reason] += 1
            dropped_s[c.reason] += c.duration
    lengths = [c.duration for c in kept]
    return {
        "language": options.language,
        "speaker": options.speaker_name,
        "sample_rate": 22050,
        "train": "metadata_train.csv",
        "eval": "metadata_eval.csv",
        "inputs": inputs,
        "references": references,
        "minutes_in_clips": round(sum(c.duration for c in clips) / 60, 2),
        "minutes_kept": round(sum(lengths) / 60, 2),
        "minutes_train": round(sum(c.duration for c in train) / 60, 2),
        "clips_kept": len(kept),
        "clips_train": len(train),
        "clips_eval": len(evals),
        "clips_dropped": sum(drops.values()),
        "drops": {reason: {"clips": n, "minutes": round(dropped_s[reason] / 60, 2)} for reason, n in drops.most_common()},
        "length_s": ({"min": round(min(lengths), 2), "median": round(float(np.median(lengths)), 2), "max": round(max(lengths), 2)}
                     if lengths else None),
        "options": dataclasses.asdict(options),
        "clips": [dataclasses.asdict(c) for c in clips],
    }


def format_table(report: dict[str, Any]) -> str:
    lines = [f"kept      {report['clips_kept']:>4} clips  {report['minutes_kept']:>6.2f} min"
             f"  (train {report['clips_train']}, eval {report['clips_eval']})"]
    for reason, drop in report["drops"].items():
        lines.append(f"dropped   {drop['clips']:>4} clips  {drop['minutes']:>6.2f} min  {reason}")
    if report["length_s"]:
        ls = report["length_s"]
        lines.append(f"length    {ls['min']:.1f} - {ls['max']:.1f} s, median {ls['median']:.1f} s")
    return "\n".join(lines)


def histogram(clips: list, path: Path) -> None:
    """Clip lengths, kept and dropped, stacked in 1 s bins (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = np.arange(0, 13, 1.0)
    kept = [min(c.duration, 12.49) for c in clips if not c.reason]
    dropped = [min(c.duration, 12.49) for c in clips if c.reason]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist([kept, dropped], bins=bins, stacked=True, label=[f"kept ({len(kept)})", f"dropped ({len(dropped)})"],
            color=["#2a7", "#bbb"])
    ax.set_xlabel("clip length (s)")
    ax.set_ylabel("clips")
    ax.set_title(f"{sum(kept) / 60:.1f} min kept of {sum(kept + dropped) / 60:.1f} min in clips")
    ax.legend()
    fig.tight_layout()
    files.write_png(path, fig, dpi=100)
    plt.close(fig)
