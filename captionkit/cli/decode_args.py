"""Decoding options shared by ``captionkit caption`` and ``captionkit evaluate`` (LRCN Table 6).

    --greedy | --beam K | --sample N   the method (mutually exclusive)
    --temperature T                    inverse temperature of --sample: softmax(T * logits), inf = greedy
    --max-len L  --nbest M  --length-norm A  --seed S

Every option defaults to "not given": only the options on the command line override ``default``
(the DecodeConfig from a checkpoint or recipe; DecodeConfig() when there is none). An option that
the chosen method would silently ignore is an error, not a no-op.
"""
from __future__ import annotations

import argparse
import dataclasses
import math

from captionkit.decoding import DecodeConfig
from captionkit.errors import UserError

# DecodeConfig field -> the option that sets it, to name options (not fields) in error messages.
OPTION_OF_FIELD = {"beam_size": "--beam", "n": "--sample", "temperature": "--temperature",
                   "max_len": "--max-len", "nbest": "--nbest", "length_norm": "--length-norm",
                   "seed": "--seed"}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0 (or inf), got {text!r}") from None
    if not value > 0:  # rejects NaN too
        raise argparse.ArgumentTypeError(f"expected a number > 0 (or inf), got {text!r}")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def add_decode_args(parser: argparse.ArgumentParser) -> None:
    """Add the decoding options to ``parser`` (the seed is stored as ``args.decode_seed``)."""
    group = parser.add_argument_group(
        "decoding (LRCN Table 6)", "options not given keep the checkpoint's or recipe's decode settings "
        "(built-in: greedy, --max-len 20, --temperature 1.5, --seed 0)")
    method = group.add_mutually_exclusive_group()
    method.add_argument("--greedy", action="store_true", help="greedy (argmax) decoding")
    method.add_argument("--beam", type=_positive_int, metavar="K",
                        help="beam search of width K (1 equals greedy)")
    method.add_argument("--sample", type=_positive_int, metavar="N",
                        help="draw N samples per input and keep the most probable under the model")
    group.add_argument("--temperature", type=_positive_float, metavar="T",
                       help="inverse temperature of --sample: draws from softmax(T * logits); "
                            "T > 1 is greedier, inf is greedy (1.5 was the paper's best)")
    group.add_argument("--max-len", type=_positive_int, metavar="L",
                       help="generate at most L tokens, EOS included")
    group.add_argument("--nbest", type=_positive_int, metavar="M",
                       help="hypotheses per input, best first (<= K for --beam, <= N for --sample)")
    group.add_argument("--length-norm", type=_nonnegative_float, metavar="A",
                       help="rank beams by logp / len**A (0 = off, as in the paper)")
    group.add_argument("--seed", dest="decode_seed", type=int, metavar="S",
                       help="seed of the sampling generator")
    group.add_argument("--allow-unk", action="store_true", default=None,
                       help="let captions contain <unk> (by default the unknown-word token is masked)")


def decode_config_from_args(args: argparse.Namespace, default: DecodeConfig | None = None
                            ) -> DecodeConfig:
    """The DecodeConfig that ``args`` asks for: ``default`` with the given options applied."""
    base = default if default is not None else DecodeConfig()
    changes: dict = {}
    if args.greedy:
        changes.update(method="greedy")
    if args.beam is not None:
        changes.update(method="beam", beam_size=args.beam)
    if args.sample is not None:
        changes.update(method="sample", n=args.sample)
    given = {"temperature": args.temperature, "max_len": args.max_len, "nbest": args.nbest,
             "length_norm": args.length_norm, "seed": args.decode_seed,
             "allow_unk": getattr(args, "allow_unk", None)}
    changes.update({field: value for field, value in given.items() if value is not None})
    method = changes.get("method", base.method)
    only_for = {"temperature": "sample", "seed": "sample", "length_norm": "beam"}
    for field, needed in only_for.items():
        if given[field] is not None and method != needed:
            hint = "--sample N" if needed == "sample" else "--beam K"
            raise UserError(f"{OPTION_OF_FIELD[field]} only applies to {hint} "
                            f"(the decoding method is {method!r})")
    if "method" in changes and args.nbest is None:
        # A new method keeps the default's nbest only where it still fits (greedy returns one).
        limit = {"greedy": 1, "beam": changes.get("beam_size", base.beam_size),
                 "sample": changes.get("n", base.n)}[method]
        changes["nbest"] = min(base.nbest, limit)
    try:
        return dataclasses.replace(base, **changes)
    except ValueError as err:
        message = str(err)
        for field, option in OPTION_OF_FIELD.items():
            message = message.replace(f"decode.{field} ", f"{option} ")
        raise UserError(f"invalid decoding options: {message}") from None
