"""Load test of ``s3tvr serve``: N clients at once (1, 2, 4, 8 by default), each streaming a
different Spanish FLEURS clip at real-time pace over WebSockets, against one server process with
the offline profile. Per N: first audio after the end of speech (p50/p90 over every utterance),
EndOffset p50, the server's CPU use (cores busy) and peak memory, sessions that failed. Then the
most sessions held before the p50 passes twice the single-session figure.

    .venv/bin/python benchmarks/bench_serve.py [--clients 1 2 4 8] [--config offline] [--set KEY=VALUE]
                                               [--out eval-out/serve.json] [--data DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s3tvr.audio.decode import load_audio  # noqa: E402
from s3tvr.latency.field_metrics import field_figures, source_latencies  # noqa: E402
from s3tvr.latency.percentile import percentile  # noqa: E402
from s3tvr.serve.client import stream_file  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_lag import set_args  # noqa: E402
from bench_window import reference_pass_s  # noqa: E402
from shared_data import add_argument, speech, use  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(config: str, port: int, sessions: int, log: Path, sets: list[str]) -> subprocess.Popen:
    server = subprocess.Popen([str(ROOT / ".venv/bin/s3tvr"), "serve", "--config", config, "--port", str(port),
                               "--max-sessions", str(sessions), *set_args(sets)],
                              stderr=log.open("w"))
    deadline = time.monotonic() + 180
    while True:  # the models load before the port opens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: {log.read_text()}") from None
            time.sleep(0.5)


class Sampler(threading.Thread):
    """The server's peak RSS while a round runs."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process, self.peak_mb, self.stop = psutil.Process(pid), 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.peak_mb = max(self.peak_mb, self.process.memory_info().rss / 2**20)


async def round_(url: str, clips: list, n: int) -> list:
    return await asyncio.gather(*(stream_file(url, clips[k % len(clips)], "es", "en", check=False) for k in range(n)))


def measure(url: str, pid: int, clips: list, n: int) -> dict:
    process = psutil.Process(pid)
    cpu0, t0 = process.cpu_times(), time.monotonic()
    sampler = Sampler(pid)
    sampler.start()
    results = asyncio.run(round_(url, clips, n))
    sampler.stop.set()
    cpu1, wall = process.cpu_times(), time.monotonic() - t0
    records = [r for res in results for r in res.records]
    first = [r.latency_s for r in records if r.latency_s is not None]
    field = field_figures([s for res in results for s in source_latencies(res.records)])
    return {
        "clients": n, "finished": sum(1 for r in results if r.ok), "utterances": len(records),
        "first_audio_p50": round(percentile(first, 50), 2), "first_audio_p90": round(percentile(first, 90), 2),
        "end_offset_p50": round(field["EndOffset"]["p50"], 2),
        "cores_busy": round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall, 2),
        "peak_rss_mb": round(sampler.peak_mb), "wall_s": round(wall, 1),
        "errors": sorted({e for r in results for e in r.errors} | {r.close_reason for r in results if not r.ok}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--config", default="offline")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for the server, e.g. simultaneous.mode=sentence (repeatable)")
    ap.add_argument("--out", type=Path, default=ROOT / "eval-out" / "serve.json")
    add_argument(ap)
    args = ap.parse_args()
    use(args.data)
    reference = reference_pass_s()
    clips = [load_audio(c, 16000) for c in sorted(speech("fleurs").glob("fleurs-es-*.ogg"))]
    port = free_port()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    server = start_server(args.config, port, max(args.clients), args.out.with_suffix(".log"), args.sets)
    try:
        url = f"ws://127.0.0.1:{port}/ws"
        rows = [measure(url, server.pid, clips, n) for n in args.clients]
    finally:
        server.terminate()
        server.wait(timeout=30)
    keys = ["clients", "finished", "utterances", "first_audio_p50", "first_audio_p90", "end_offset_p50", "cores_busy",
            "peak_rss_mb", "wall_s"]
    print(f"machine: {os.cpu_count()} cores, a full-window Whisper base pass over 10 s takes {reference:.2f} s; "
          f"config {args.config} {' '.join(args.sets)}; clips streamed at real-time pace")
    print("  ".join(keys))
    for row in rows:
        print("  ".join(str(row[k]) for k in keys) + (f"  errors: {row['errors']}" if row["errors"] else ""))
    single = rows[0]["first_audio_p50"] if rows and rows[0]["clients"] == 1 else None
    if single is not None:
        held = [r["clients"] for r in rows if r["finished"] == r["clients"] and r["first_audio_p50"] <= 2 * single]
        print(f"sessions held before the first-audio p50 passes twice the single session's ({single:.2f} s): "
              f"{max(held) if held else 0}")
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
