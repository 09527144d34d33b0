"""LRCN stack: every variant x unit runs forward, backward and decode; forward == step by step."""
import pytest
import torch

from captionkit.decoding import greedy
from captionkit.recurrent import LRCNStack, RecurrentConfig

CASES = [(v, u) for v in ("1u", "2u", "2f") for u in ("lstm", "rnn")]


def make(variant, unit, V=11, D=6):
    torch.manual_seed(0)
    return LRCNStack(RecurrentConfig(variant=variant, unit=unit, hidden=9, embed=5, dropout=0.3), V, D)


@pytest.mark.parametrize("variant, unit", CASES)
def test_forward_equals_step_by_step(variant, unit):
    core = make(variant, unit).eval()
    tokens = torch.randint(0, 11, (3, 7))
    visual = torch.randn(3, 6)
    full = torch.log_softmax(core(tokens, visual), -1)  # (B, T, V)
    state = core.init_state(visual)
    for t in range(tokens.size(1)):
        logp, state = core.step(tokens[:, t], state)
        torch.testing.assert_close(logp, full[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant, unit", CASES)
def test_trains_a_step_and_decodes(variant, unit):
    core = make(variant, unit).train()
    opt = torch.optim.SGD(core.parameters(), lr=0.1)
    tokens, visual = torch.randint(4, 11, (4, 5)), torch.randn(4, 6)
    loss = torch.nn.functional.cross_entropy(core(tokens[:, :-1], visual).flatten(0, 1), tokens[:, 1:].flatten())
    loss.backward()
    assert all(p.grad is not None for p in core.parameters() if p.requires_grad)
    opt.step()
    core.eval()
    out = greedy(core.step, core.init_state(visual), bos=1, eos=2, max_len=6)
    assert len(out) == 4 and all(len(h[0].tokens) <= 6 for h in out)


def test_visual_enters_the_right_layer():
    """2f: layer 1 sees words only; 1u/2u: layer 1 sees [word; image]."""
    f, u = make("2f", "lstm"), make("2u", "lstm")
    assert f.layers[0].input_size == 5 and f.layers[1].input_size == 9 + 6
    assert u.layers[0].input_size == 5 + 6 and u.layers[1].input_size == 9
    assert make("1u", "lstm").num_layers == 1


def test_bad_config_values():
    with pytest.raises(ValueError, match="variant"):
        RecurrentConfig(variant="3u")
    with pytest.raises(ValueError, match="unit"):
        RecurrentConfig(unit="gru")


@pytest.mark.parametrize("variant", ["1u", "2u", "2f"])
def test_forget_bias_sets_only_the_forget_gates(variant):
    """forget_bias=1: every LSTM layer's total forget-gate bias starts at 1; other gates keep torch's init."""
    torch.manual_seed(0)
    plain = LRCNStack(RecurrentConfig(variant=variant, hidden=9, embed=5), 11, 6)
    torch.manual_seed(0)
    core = LRCNStack(RecurrentConfig(variant=variant, hidden=9, embed=5, forget_bias=1.0), 11, 6)
    for a, b in zip(plain.layers, core.layers):
        total = b.bias_ih_l0 + b.bias_hh_l0  # (4H,), gates i, f, g, o
        torch.testing.assert_close(total[9:18], torch.ones(9))
        for rows in (slice(0, 9), slice(18, 36)):
            torch.testing.assert_close(b.bias_ih_l0[rows], a.bias_ih_l0[rows])
            torch.testing.assert_close(b.bias_hh_l0[rows], a.bias_hh_l0[rows])
    rnn = LRCNStack(RecurrentConfig(variant=variant, unit="rnn", hidden=9, embed=5, forget_bias=1.0), 11, 6)
    assert rnn.layers[0].bias_ih_l0.shape == (9,)  # no gates: the setting does not apply
