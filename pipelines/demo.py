"""The main job behind `make demo` (stage 1 of the project: evaluation + default dataset).

    python -m pipelines.demo --shared ../shared --workdir cache/demo

1. Reproduces the paper's Tables 1-2 from the authors' per-song predictions
   (shared/data/paper_predictions) with our evaluation. Expected: "Paper Tables 1-2 reproduced: yes".
2. Generates the embedded default dataset (synthetic multi-stem songs rated by simulated
   annotator panels; 100 songs x 20 s, seed 0, about 30 s on 2 cores) into WORKDIR/synth and
   reads it back with the PMEmo reader.
Prints where its outputs are on the last line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mer_jax.data import read_pmemo
from mer_jax.data.synth import SynthConfig, write_dataset
from pipelines import reproduce_paper


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--workdir", type=Path, default=Path("cache/demo"))
    parser.add_argument("--songs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    code = reproduce_paper.main(["--predictions-dir", str(args.shared / "data" / "paper_predictions"),
                                 "--out", str(args.workdir / "paper_tables")])

    config = SynthConfig(n=args.songs, seconds=args.seconds, seed=args.seed)
    synth_dir = args.workdir / f"synth-n{config.n}-s{config.seconds:g}-seed{config.seed}"
    print(f"\nDefault dataset: {config.n} synthetic songs x {config.seconds:g} s (seed {config.seed})")
    write_dataset(synth_dir, config)
    dataset = read_pmemo(synth_dir)
    labels = np.stack([s.labels for s in dataset])
    print(dataset.report().splitlines()[0])
    for k, name in enumerate(("valence mean", "arousal mean", "valence std", "arousal std")):
        print(f"  {name:>12}: mean {labels[:, k].mean():.3f}, sd {labels[:, k].std():.3f}, "
              f"range {labels[:, k].min():.3f}-{labels[:, k].max():.3f}")
    print(f"  true stems under {synth_dir / 'stems'}; the known answer in "
          f"{synth_dir / 'synth_songs.csv'}")
    print(f"demo outputs: {args.workdir.resolve()}")
    return code


if __name__ == "__main__":
    sys.exit(main())
