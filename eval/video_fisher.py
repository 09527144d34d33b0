"""Mean pooling vs RNN-FV pooling of a trained activity checkpoint's frozen frame features (Lev et al.,
ECCV 2016, applied to video; ``captionkit.fisher.video``): each whole video of the checkpoint's
train / test lists -> per-frame CNN features -> pooled vector -> linear classifier.

    python eval/video_fisher.py --checkpoint runs/synth_activity_single/best.pt \
        [--hidden 100 --lm-epochs 30 --pca 128] [--out eval/results/video_fisher.json]

On the synthetic time-reversed classes, mean pooling cannot tell a video from its reversal and the
RNN-FV can (README, activity recognition).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout without installing

from captionkit.errors import UserError  # noqa: E402
from captionkit.fisher.video import VideoFisherConfig, compare_on_checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python eval/video_fisher.py", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="an activity checkpoint (its data lists are used)")
    ap.add_argument("--hidden", type=int, default=VideoFisherConfig.hidden, help="regression LM size")
    ap.add_argument("--lm-epochs", type=int, default=VideoFisherConfig.lm_epochs)
    ap.add_argument("--pca", type=int, default=VideoFisherConfig.pca_dim, help="PCA size (0 = none)")
    ap.add_argument("--clf-epochs", type=int, default=VideoFisherConfig.clf_epochs)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="write the accuracies as JSON here")
    args = ap.parse_args(argv)
    cfg = VideoFisherConfig(hidden=args.hidden, lm_epochs=args.lm_epochs, pca_dim=args.pca,
                            clf_epochs=args.clf_epochs)
    try:
        acc = compare_on_checkpoint(args.checkpoint, cfg, args.device, log=lambda *a: print(*a, file=sys.stderr))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = {"checkpoint": args.checkpoint, "accuracy": acc, "config": vars(cfg)}
    print(f"{'pooling':<8} {'accuracy':>8}\n" + "\n".join(f"{k:<8} {v:>8.3f}" for k, v in acc.items()))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
