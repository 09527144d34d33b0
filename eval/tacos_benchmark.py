"""Write the TACoS tuple -> sentence benchmark (``captionkit.data.tacos``: gold tuples extracted from
the real TACoS sentences, CRF outputs simulated by a calibrated noise model) as tuple files.

    python eval/tacos_benchmark.py --out runs/tacos_bench [--noise 1.0] [--seed 0] [--min-count 3]

Writes ``{train,val,test}.json`` (``captionkit.data.tuples`` format) and ``stats.json`` (slot
accuracies of the simulated CRF), the inputs of ``recipes/tacos_{a,b,c}.toml``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout without installing

from captionkit.data.tacos import DEFAULT_ROOT, write_benchmark  # noqa: E402
from captionkit.errors import UserError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python eval/tacos_benchmark.py", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for {train,val,test}.json and stats.json")
    ap.add_argument("--root", default=str(DEFAULT_ROOT), help="folder with TACoS {train,val,test}.json")
    ap.add_argument("--noise", type=float, default=1.0, help="CRF evidence noise sigma (default 1.0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-count", type=int, default=3, help="rarer training labels become <other>")
    args = ap.parse_args(argv)
    try:
        stats = write_benchmark(args.out, args.root, args.noise, args.seed, args.min_count)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(stats, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
