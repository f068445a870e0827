"""CLI: ``python -m mer_jax.data.synth --out DIR --n N --seconds S --seed K [--workers W]``."""
from __future__ import annotations

import argparse
import sys
import time

from mer_jax.data.synth.generate import SynthConfig, write_dataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mer_jax.data.synth",
                                     description="Generate the synthetic default dataset "
                                                 "(PMEmo layout + true stems).")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, default=SynthConfig.n, help="number of songs")
    parser.add_argument("--seconds", type=float, default=SynthConfig.seconds,
                        help="length of each song")
    parser.add_argument("--seed", type=int, default=SynthConfig.seed)
    parser.add_argument("--panel-size", type=int, default=SynthConfig.panel_size,
                        help="annotators per song")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    args = parser.parse_args(argv)
    config = SynthConfig(n=args.n, seconds=args.seconds, seed=args.seed,
                         panel_size=args.panel_size)
    start = time.perf_counter()
    try:
        out = write_dataset(args.out, config, workers=args.workers)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{config.n} songs x {config.seconds:g} s in {time.perf_counter() - start:.1f} s")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
