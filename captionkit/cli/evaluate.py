"""``captionkit evaluate --checkpoint CKPT [--checkpoint CKPT2 ...] [--split val|test] [decoding options]``.

Captioners: caption a split of the checkpoint's dataset, score it with ``captionkit score``'s
machinery (official scorers; ``--fast`` for the exact fast BLEU/CIDEr-D only), print the table and
the LRCN caption statistics, and write the captions (COCO results format) and the scores (JSON).
Several captioner checkpoints decode as one ensemble (``captionkit.models.ensemble``).
Activity recognisers and video describers are evaluated by their own task modules.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .decode_args import add_decode_args, decode_config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="caption (or classify) a dataset split and score it")
    p.add_argument("--checkpoint", required=True, action="append", metavar="CKPT",
                   help="a checkpoint; repeat it to decode with an ensemble of captioners (one vocabulary)")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--data-root", default=None, help="override the checkpoint's data.root")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a data.* setting of the checkpoint's config, e.g. data.val_split=...")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N images only")
    p.add_argument("--out", default=None, help="output folder (default: next to the checkpoint)")
    p.add_argument("--tag", default=None, help="name for the output files (default: split + decoding)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metric list (default: bleu,meteor,rouge,cider; with --fast: bleu,cider)")
    p.add_argument("--fast", action="store_true",
                   help="BLEU and CIDEr-D by the exact numpy path and the Python PTB tokenizer (no Java)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.add_argument("--fuse-with", default=None, metavar="CKPT",
                   help="activity: late-fuse with the other modality's checkpoint (LRCN Table 1)")
    p.add_argument("--rgb-weight", type=float, default=0.5,
                   help="activity fusion: weight of the RGB model (0.5 or 1/3 in the paper)")
    add_decode_args(p)
    p.set_defaults(run=run)


def metric_list(args) -> tuple[str, ...]:
    """--metrics, or the default for the path: --fast scores BLEU and CIDEr-D only (no Java)."""
    text = args.metrics or ("bleu,cider" if args.fast else "bleu,meteor,rouge,cider")
    return tuple(m.strip() for m in text.split(",") if m.strip())


def decode_tag(cfg) -> str:
    if cfg.method == "beam":  # length normalisation changes the captions: its own files
        return f"beam{cfg.beam_size}" + (f"_ln{cfg.length_norm:g}" if cfg.length_norm else "")
    if cfg.method == "sample":
        return f"sample{cfg.n}_T{cfg.temperature:g}"
    return "greedy"


def run(args) -> int:
    from .. import checkpoint

    ckpt = checkpoint.load(args.checkpoint[0])
    if ckpt["task"] != "caption" and len(args.checkpoint) > 1:
        from ..errors import UserError
        raise UserError(f"only captioners decode as an ensemble; {args.checkpoint[0]} is a {ckpt['task']!r} "
                        "checkpoint (activity models fuse with --fuse-with)")
    if ckpt["task"] != "caption":
        args.checkpoint = args.checkpoint[0]
    if ckpt["task"] == "activity":
        from .evaluate_activity import run_activity_eval
        return run_activity_eval(args, ckpt)
    if ckpt["task"] == "describe":
        from .describe import run_describe_eval
        return run_describe_eval(args, ckpt)
    return evaluate_captioner(args, ckpt)


def evaluate_captioner(args, ckpt: dict) -> int:
    import torch

    from ..config import apply_overrides
    from ..metrics import caption_stats, score_captions
    from ..models.ensemble import frozen_features, with_members
    from ..tasks import load_trained
    from ..tasks.caption_data import load_split
    from ..tasks.caption_generate import caption_features, caption_source

    if args.data_root is not None:
        ckpt["config"]["data"]["root"] = args.data_root
    apply_overrides(ckpt["config"], args.overrides)
    device = torch.device(args.device)
    task, model = with_members(*load_trained(ckpt, device), args.checkpoint, device)
    cfg = decode_config_from_args(args, task.cfg.decode)
    src = load_split(task.cfg.data, args.split)
    items = src.items[:args.limit] if args.limit else src.items
    enc_cfg = task.cfg.encoder
    feats = frozen_features(model.encoder, [it.image_id for it in items], src.image_by_id,  # (N, D) or None
                            enc_cfg.cache_dir if enc_cfg.cache else None, enc_cfg.batch_size, device)
    t0 = time.time()
    if feats is not None:  # frozen CNNs: reuse (or fill) the training feature caches
        hyps = caption_features(model, feats, task.vocab, cfg, device, args.batch_size, progress=True)
    else:
        hyps = caption_source(model, src, task.vocab, cfg, device, limit=len(items), progress=True)
    decode_seconds = time.time() - t0
    res = {it.image_id: h[0][0] for it, h in zip(items, hyps)}
    refs = {it.image_id: it.captions for it in items}
    report = score_captions(refs, res, metrics=metric_list(args), official=not args.fast)
    train_caps = [c for it in load_split(task.cfg.data, "train").items for c in it.captions]
    stats = caption_stats(res, train_caps, refs)

    out = Path(args.out) if args.out else Path(args.checkpoint[0]).parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    ens = f"_ens{len(args.checkpoint)}" if len(args.checkpoint) > 1 else ""
    tag = args.tag or f"{args.split}_{decode_tag(cfg)}{ens}"
    coco = [{"image_id": int(i) if i.isdigit() else i, "caption": c} for i, c in res.items()]
    (out / f"captions_{tag}.json").write_text(json.dumps(coco, indent=1))
    summary = {"checkpoint": str(args.checkpoint[0]), "split": args.split, "images": len(res),
               "decode": vars(cfg), "decode_seconds": round(decode_seconds, 2), "scores": report.scores,
               "stats": stats, "settings": report.settings}
    if ens:
        summary["ensemble"] = list(map(str, args.checkpoint))
    (out / f"scores_{tag}.json").write_text(json.dumps(summary, indent=2))
    print(f"{args.split}: {len(res)} images, decoding {decode_tag(cfg)}"
          + (f", ensemble of {len(args.checkpoint)} checkpoints" if ens else ""))
    print(report.table())
    print("caption statistics: " + ", ".join(f"{k}={v:.3f}" for k, v in stats.items()))
    print(f"wrote {out / f'captions_{tag}.json'} and {out / f'scores_{tag}.json'}")
    if args.json:
        print(json.dumps(summary))
    return 0
