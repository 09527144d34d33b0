"""Decoding options shared by ``captionkit caption`` and ``captionkit evaluate`` (LRCN Table 6).

    --greedy | --beam K | --sample N   the method (mutually exclusive)
    --temperature T                    inverse temperature of --sample: softmax(T * logits), inf = greedy
    --max-len L  --nbest M  --length-norm A  --seed S  --no-repeat-ngram N

Every option defaults to "not given": only the options on the command line override ``default``
(the DecodeConfig from a checkpoint or recipe; DecodeConfig() when there is none). An option that
the chosen method would silently ignore is an error, not a no-op.

Also the argument types every command shares (the one cli module others may import): counts
(``positive_int``, ``count_or_all``), ``probability``, ``seconds``, ``seed`` and ``device`` (a device
that is not there, such as ``cuda`` on a machine without CUDA, is rejected while parsing), and
``json_or_text``, which keeps stdout to one JSON object under ``--json``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
from collections.abc import Callable

from captionkit.decoding import DecodeConfig
from captionkit.errors import UserError

# DecodeConfig field -> the option that sets it, to name options (not fields) in error messages.
OPTION_OF_FIELD = {"beam_size": "--beam", "n": "--sample", "temperature": "--temperature",
                   "max_len": "--max-len", "nbest": "--nbest", "length_norm": "--length-norm",
                   "seed": "--seed", "no_repeat_ngram": "--no-repeat-ngram"}


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (batch sizes, counts)."""
    return _int_at_least(text, 1, "an integer >= 1")


def seed(text: str) -> int:
    """argparse type: a generator seed, 0 <= S < 2**63 (what torch.Generator.manual_seed takes)."""
    value = _int_at_least(text, 0, "an integer in [0, 2**63)")
    if value >= 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**63), got {text!r}")
    return value


def _off_or_int(text: str) -> int:
    """argparse type: an integer >= 0, where 0 means off (``--no-repeat-ngram``)."""
    return _int_at_least(text, 0, "an integer >= 0 (0 = off)")


def count_or_all(text: str) -> int:
    """argparse type: an integer >= 0, where 0 means all (``--limit``)."""
    return _int_at_least(text, 0, "an integer >= 0 (0 = all)")


def probability(text: str) -> float:
    """argparse type: a number in [0, 1] (fusion weights)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # rejects NaN too
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0 (deadlines)."""
    value = _positive_float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text!r}")
    return value


def device(text: str) -> str:
    """argparse type: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and present on this machine."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {text!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine "
                                             f"(torch {torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} "
                                             "CUDA device(s), numbered from 0")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: Apple MPS is not available on this machine")
    elif dev.type != "cpu":
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def add_device_arg(parser: argparse.ArgumentParser) -> None:
    """``--device`` (checked while parsing: a missing GPU is a one-line error, not a traceback)."""
    parser.add_argument("--device", type=device, default="cpu", help="cpu | cuda | cuda:N | mps")


def json_or_text(as_json: bool, work: Callable[[], dict]) -> int:
    """Run ``work``; with ``as_json`` everything it prints goes to stderr and stdout gets only its
    result, as one JSON object (so ``captionkit ... --json | jq`` works)."""
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        result = work()
    if as_json:
        print(json.dumps(result), file=stdout)
    return 0


def one_caption_per_input(args: argparse.Namespace, where: str,
                          hint: str = "use --format json for n-best lists") -> None:
    """UserError when ``--nbest M > 1`` is given to an output that holds one caption per input."""
    if args.nbest is not None and args.nbest > 1:
        raise UserError(f"--nbest {args.nbest}: {where} holds one caption per input (the best); {hint}")


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
    method.add_argument("--beam", type=positive_int, metavar="K",
                        help="beam search of width K (1 equals greedy)")
    method.add_argument("--sample", type=positive_int, metavar="N",
                        help="draw N samples per input and keep the most probable under the model")
    group.add_argument("--temperature", type=_positive_float, metavar="T",
                       help="inverse temperature of --sample: draws from softmax(T * logits); "
                            "T > 1 is greedier, inf is greedy (1.5 was the paper's best)")
    group.add_argument("--max-len", type=positive_int, metavar="L",
                       help="generate at most L tokens, EOS included")
    group.add_argument("--nbest", type=positive_int, metavar="M",
                       help="hypotheses per input, best first (<= K for --beam, <= N for --sample)")
    group.add_argument("--length-norm", type=_nonnegative_float, metavar="A",
                       help="rank beams by logp / len**A (0 = off, as in the paper)")
    group.add_argument("--seed", dest="decode_seed", type=seed, metavar="S",
                       help="seed of the sampling generator")
    group.add_argument("--no-repeat-ngram", type=_off_or_int, metavar="N",
                       help="no caption repeats an N-gram (3 stops 'on a skateboard on a skateboard'; 0 = off)")
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
             "allow_unk": args.allow_unk, "no_repeat_ngram": args.no_repeat_ngram}
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
