"""The main job behind `make demo`.

    python -m pipelines.demo --shared ../shared --workdir cache/demo

1. Reproduces the paper's Tables 1-2 from the authors' per-song predictions
   (shared/data/paper_predictions) with our evaluation: expected "reproduced: yes".
Prints where its outputs are on the last line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines import reproduce_paper


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--workdir", type=Path, default=Path("cache/demo"))
    args = parser.parse_args(argv)
    code = reproduce_paper.main(["--predictions-dir", str(args.shared / "data" / "paper_predictions"),
                                 "--out", str(args.workdir / "paper_tables")])
    print(f"demo outputs: {args.workdir.resolve()}")
    return code


if __name__ == "__main__":
    sys.exit(main())
