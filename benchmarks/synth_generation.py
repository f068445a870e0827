"""Benchmark: time to generate the synthetic default dataset (issue target: 200 x 20 s < 120 s).

    python benchmarks/synth_generation.py [--n 200] [--seconds 20] [--workers N] [--json]

Generates into a temporary folder (deleted afterwards) and prints the wall time, songs per second
and the size on disk; also times rendering one song in-process (no files) for the per-song cost.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from mer_jax.data.synth import SynthConfig, render_song, write_dataset
from mer_jax.data.synth.generate import pool_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = SynthConfig(n=args.n, seconds=args.seconds, seed=0)

    start = time.perf_counter()
    for index in range(3):
        render_song(config, index, pool_for(config))
    per_song = (time.perf_counter() - start) / 3

    tmp = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    try:
        start = time.perf_counter()
        write_dataset(tmp / "data", config, workers=args.workers, progress=False)
        wall = time.perf_counter() - start
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(tmp)
    result = {"songs": config.n, "seconds_per_song": config.seconds,
              "workers": args.workers or os.cpu_count(), "cpus": os.cpu_count(),
              "machine": platform.processor() or platform.machine(),
              "wall_s": round(wall, 1), "songs_per_s": round(config.n / wall, 2),
              "render_one_song_s": round(per_song, 3), "disk_mb": round(size / 2**20, 1),
              "target_s": 120, "meets_target": wall < 120}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
