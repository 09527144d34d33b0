"""The decoding settings: ``DecodeConfig`` validation and the CLI's decoding options
(``cli/decode_args.py``), with errors that name the field or option."""
from __future__ import annotations

import argparse
import math

import pytest
import torch
from _decoding_toys import BOS, EOS, INF

from captionkit.cli.decode_args import add_decode_args, decode_config_from_args
from captionkit.decoding import DecodeConfig, greedy
from captionkit.errors import UserError


# ----------------------------------------------------------------------------- config and CLI

@pytest.mark.parametrize("kwargs,field", [
    (dict(method="viterbi"), "method"), (dict(beam_size=0), "beam_size"), (dict(n=0), "n"),
    (dict(temperature=0.0), "temperature"), (dict(temperature=math.nan), "temperature"),
    (dict(max_len=0), "max_len"), (dict(max_len=10**12), "max_len"), (dict(length_norm=-1.0), "length_norm"),
    (dict(chunk=-1), "chunk"), (dict(no_repeat_ngram=-1), "no_repeat_ngram"),
    (dict(nbest=2), "nbest"), (dict(method="beam", beam_size=2, nbest=3), "nbest"),
    (dict(beam_size=True), "beam_size"),
])
def test_decode_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"decode.{field}"):
        DecodeConfig(**kwargs)
    assert DecodeConfig(temperature=INF).temperature == INF


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_decode_args(parser)
    return parser.parse_args(list(argv))


def test_cli_builds_decode_configs():
    assert decode_config_from_args(parse()) == DecodeConfig()
    assert decode_config_from_args(parse("--beam", "5", "--nbest", "3", "--max-len", "16")) == \
        DecodeConfig(method="beam", beam_size=5, nbest=3, max_len=16)
    cfg = decode_config_from_args(parse("--sample", "100", "--temperature", "inf", "--seed", "7"))
    assert (cfg.method, cfg.n, cfg.temperature, cfg.seed) == ("sample", 100, INF, 7)
    recipe = DecodeConfig(method="beam", beam_size=4, nbest=4, length_norm=0.5)
    assert decode_config_from_args(parse("--max-len", "9"), recipe) == \
        DecodeConfig(method="beam", beam_size=4, nbest=4, length_norm=0.5, max_len=9)
    assert decode_config_from_args(parse("--greedy"), recipe).nbest == 1
    assert decode_config_from_args(parse("--no-repeat-ngram", "3"), recipe) == \
        DecodeConfig(method="beam", beam_size=4, nbest=4, length_norm=0.5, no_repeat_ngram=3)


def test_cli_max_len_is_bounded_with_the_option_named():
    """The decoders hold (rows, max_len) token buffers: a huge --max-len is refused, not allocated."""
    with pytest.raises(UserError, match=r"--max-len must be an integer in \[1, 1000\], got 1000000000000"):
        decode_config_from_args(parse("--max-len", str(10**12)))
    assert decode_config_from_args(parse("--max-len", "1000")).max_len == 1000
    with pytest.raises(ValueError, match="max_len must be an integer in"):
        greedy(lambda tokens, state: None, (torch.zeros(1, 1),), bos=BOS, eos=EOS, max_len=1001)


@pytest.mark.parametrize("argv,message", [
    (("--temperature", "2"), "--temperature only applies to --sample"),
    (("--beam", "3", "--seed", "1"), "--seed only applies to --sample"),
    (("--sample", "3", "--length-norm", "1"), "--length-norm only applies to --beam"),
    (("--beam", "2", "--nbest", "3"), "--nbest must be <= 2"),
])
def test_cli_rejects_options_that_would_be_ignored(argv, message):
    with pytest.raises(UserError, match=message):
        decode_config_from_args(parse(*argv))


@pytest.mark.parametrize("argv", [("--beam", "2", "--sample", "3"), ("--beam", "0"),
                                  ("--temperature", "-1"), ("--length-norm", "nan")])
def test_cli_parse_errors(argv, capsys):
    with pytest.raises(SystemExit):
        parse(*argv)
