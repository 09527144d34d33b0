"""LRCN stack: every variant x unit runs forward, backward and decode; forward == step by step."""
import pytest
import torch

from captionkit.decoding import greedy
from captionkit.recurrent import LRCNStack, RecurrentConfig, lstm_cell, lstm_cell_split, rnn_cell, split_input

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


# ----------------------------------------------------------------------------- the fused one-step cell

@pytest.mark.parametrize("unit, bias, nonlinearity", [("lstm", True, None), ("lstm", False, None),
                                                     ("rnn", True, "tanh"), ("rnn", False, "relu")])
def test_cells_equal_one_torch_step(unit, bias, nonlinearity):
    """lstm_cell / rnn_cell == nn.LSTM / nn.RNN run for one time step, values and gradients."""
    torch.manual_seed(1)
    layer = torch.nn.LSTM(5, 7, batch_first=True, bias=bias) if unit == "lstm" else \
        torch.nn.RNN(5, 7, nonlinearity=nonlinearity, batch_first=True, bias=bias)
    x, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
    if unit == "lstm":
        _, (h_ref, c_ref) = layer(x.unsqueeze(1), (h.unsqueeze(0), c.unsqueeze(0)))
        h_new, c_new = lstm_cell(x, h, c, layer)
        torch.testing.assert_close(c_new, c_ref.squeeze(0), atol=1e-6, rtol=1e-5)
        ref, new = h_ref.squeeze(0) + c_ref.squeeze(0), h_new + c_new
    else:
        _, h_ref = layer(x.unsqueeze(1), h.unsqueeze(0))
        ref, new = h_ref.squeeze(0), rnn_cell(x, h, layer)
    torch.testing.assert_close(new, ref, atol=1e-6, rtol=1e-5)
    g_ref = torch.autograd.grad(ref.square().sum(), list(layer.parameters()))
    g_new = torch.autograd.grad(new.square().sum(), list(layer.parameters()))
    for a, b in zip(g_new, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("bias", [True, False])
def test_split_input_steps_equal_the_cell_on_the_concatenated_input(bias):
    """split_input + lstm_cell_split == lstm_cell(cat([x_t, z_t])) over a sequence: values and gradients."""
    torch.manual_seed(2)
    layer = torch.nn.LSTM(4 + 3, 6, bias=bias)
    x, zs = torch.randn(2, 5, 4), torch.randn(5, 2, 3)

    def unroll(split: bool):
        h = c = torch.zeros(2, 6)
        if split:
            pre, weight = split_input(x, layer)
        out = []
        for t in range(5):
            z = zs[t] * h[:, :3].tanh()  # a context that depends on the state, as attention's does
            if split:
                h, c = lstm_cell_split(pre[:, t], z, h, c, weight)
            else:
                h, c = lstm_cell(torch.cat([x[:, t], z], 1), h, c, layer)
            out.append(h + c)
        return torch.stack(out)

    ref, new = unroll(False), unroll(True)
    torch.testing.assert_close(new, ref, atol=1e-6, rtol=1e-5)
    g_ref = torch.autograd.grad(ref.square().sum(), list(layer.parameters()))
    g_new = torch.autograd.grad(new.square().sum(), list(layer.parameters()))
    for a, b in zip(g_new, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_cell_rejects_stacked_layers():
    with pytest.raises(ValueError, match="cell_gates: expects a one-layer"):
        lstm_cell(torch.zeros(1, 2), torch.zeros(1, 3), torch.zeros(1, 3), torch.nn.LSTM(2, 3, num_layers=2))
    with pytest.raises(ValueError, match="split_input: expects a one-layer"):
        split_input(torch.zeros(1, 4, 1), torch.nn.LSTM(2, 3, num_layers=2))


@pytest.mark.parametrize("variant, unit", CASES)
def test_step_gradients_equal_forward(variant, unit):
    """Training through ``step`` (e.g. a sampled sequence scored with grad) == through ``forward``."""
    core = make(variant, unit).train()
    for m in core.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0  # deterministic: the same function on both paths
    tokens, visual = torch.randint(0, 11, (3, 6)), torch.randn(3, 6)
    loss_full = torch.log_softmax(core(tokens, visual), -1).sum()
    g_full = torch.autograd.grad(loss_full, list(core.parameters()), allow_unused=True)
    state, loss_step = core.init_state(visual), 0.0
    for t in range(tokens.size(1)):
        logp, state = core.step(tokens[:, t], state)
        loss_step = loss_step + logp.sum()
    g_step = torch.autograd.grad(loss_step, list(core.parameters()), allow_unused=True)
    torch.testing.assert_close(loss_step, loss_full, atol=1e-4, rtol=1e-5)
    for (name, _), a, b in zip(core.named_parameters(), g_step, g_full):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("unit", ["lstm", "rnn"])
def test_step_uses_the_cell_not_the_sequence_call(unit, monkeypatch):
    """``step`` never calls nn.LSTM/nn.RNN forward (the slow one-step path) and follows weight updates."""
    core = make("2u", unit).eval()
    tokens, visual = torch.randint(0, 11, (2, 4)), torch.randn(2, 6)
    with torch.no_grad():
        for p in core.parameters():
            p.mul_(1.5)  # an in-place update (like an optimiser step) after construction
    full = torch.log_softmax(core(tokens, visual), -1)  # (B, T, V), through nn.LSTM
    for layer in core.layers:
        monkeypatch.setattr(layer, "forward", lambda *a, **k: pytest.fail("step called the sequence layer"))
    state = core.init_state(visual)
    with torch.inference_mode():
        for t in range(tokens.size(1)):
            logp, state = core.step(tokens[:, t], state)
            torch.testing.assert_close(logp, full[:, t].detach(), atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- CPU bf16 training

def test_cpu_amp_settings():
    """train.amp on CPU: bf16 autocast only when asked for; auto stays fp32; fp16 is CUDA-only."""
    from captionkit.train import TrainConfig, amp_settings
    cpu = torch.device("cpu")
    assert amp_settings(TrainConfig(amp="bf16"), cpu) == (True, torch.bfloat16)
    for amp in ("auto", "off", "fp16"):
        assert amp_settings(TrainConfig(amp=amp), cpu) == (False, torch.float32)


def test_cpu_bf16_training_runs_in_bf16_and_learns(tmp_path):
    """A CPU run with train.amp=bf16 computes its matmuls in bf16, lowers the loss, and records it."""
    from captionkit import checkpoint
    from captionkit.tasks import load_task
    from captionkit.train import fit

    from conftest import tiny_caption_recipe

    recipe = tiny_caption_recipe(tmp_path / "run", data={"synth_train": 8, "synth_val": 4},
                                 train={"amp": "bf16", "epochs": 3, "device": "cpu"})
    core = make("2f", "lstm")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logp, _ = core.step(torch.tensor([1, 2]), core.init_state(torch.randn(2, 6)))
        assert core.out(torch.zeros(1, 9)).dtype == torch.bfloat16  # the output layer runs in bf16
    assert logp.dtype == torch.float32  # the step contract keeps fp32 log-probabilities
    summary = fit(load_task(data=recipe))
    losses = [h["train_loss"] for h in summary["history"]]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert checkpoint.load(tmp_path / "run" / "last.pt")["config"]["train"]["amp"] == "bf16"


@pytest.mark.parametrize("unit", ["lstm", "rnn"])
def test_run_layer_works_under_cpu_bf16_autocast(unit):
    """Whole-sequence layers (LRCN forward, the describer's encoder, the activity LSTM) train under CPU
    bf16 autocast, even where oneDNN has no bf16 LSTM primitive; outside autocast it is the plain call."""
    from captionkit.recurrent import run_layer
    torch.manual_seed(0)
    layer = torch.nn.LSTM(4, 5, num_layers=2, batch_first=True) if unit == "lstm" else \
        torch.nn.RNN(4, 5, num_layers=2, batch_first=True)
    x, h = torch.randn(3, 6, 4), torch.randn(2, 3, 5)
    init = (h, torch.randn(2, 3, 5)) if unit == "lstm" else h
    ref, _ = layer(x, init)
    out, _ = run_layer(layer, x, init)
    torch.testing.assert_close(out, ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = run_layer(layer, x, init)
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)
