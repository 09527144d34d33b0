"""The LRCN recurrent stack (Donahue et al., LRCN, section 5 and Figure 4).

Three variants of where the visual feature enters (the visual feature is fed at every time step):
  ``1u``  one layer:              layer1([embed(w_t); visual])          -> predict
  ``2u``  two layers, unfactored: layer1([embed(w_t); visual]) -> layer2  -> predict
  ``2f``  two layers, factored:   layer1(embed(w_t)) -> layer2([h1; visual]) -> predict
and two units: ``lstm`` and a vanilla ``rnn`` (tanh) for the paper's RNN ablation.

One module, two entry points: ``forward`` runs whole teacher-forced sequences (one fused cuDNN call
per layer) and ``step`` runs one token for the decoders; a test proves that they agree. ``step`` does
not call ``nn.LSTM`` for a single time step (its per-call overhead was 74% of a decoding step at batch
64 / hidden 1000): it runs the cell math on the same parameters (``lstm_cell`` / ``rnn_cell``: two
``addmm`` and the gate nonlinearities), so checkpoints are unchanged and autograd works through it.

Shape legend: B batch, T time steps, E word-embedding size, D visual feature size, H hidden size,
V vocabulary size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

VARIANTS = ("1u", "2u", "2f")
UNITS = ("lstm", "rnn")


@dataclass
class RecurrentConfig:
    variant: str = "2f"     # "1u" | "2u" | "2f" (LRCN Table 5 rows)
    unit: str = "lstm"      # "lstm" | "rnn" (vanilla tanh RNN, the paper's ablation)
    hidden: int = 1000      # the paper uses 1000 units per layer
    embed: int = 1000       # word embedding size (the paper embeds words into 1000-d)
    dropout: float = 0.5    # on embeddings, between layers and before the output layer
    forget_bias: float = 0.0  # LSTM forget-gate bias at initialisation (b_ih + b_hh); 0 = torch's
                              # uniform init, 1 = the common "remember by default" start

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"model.variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.unit not in UNITS:
            raise ValueError(f"model.unit must be one of {UNITS}, got {self.unit!r}")
        if self.hidden <= 0 or self.embed <= 0:
            raise ValueError("model.hidden and model.embed must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")


def _check_one_layer(layer: nn.RNNBase, caller: str) -> None:
    if layer.num_layers != 1 or layer.bidirectional or getattr(layer, "proj_size", 0):
        raise ValueError(f"{caller}: expects a one-layer, one-direction recurrent layer without projection")


def cell_gates(x: torch.Tensor, h: torch.Tensor, layer: nn.RNNBase) -> torch.Tensor:
    """Pre-activations of a one-layer ``nn.LSTM``/``nn.RNN`` for one step: x (B, in), h (B, H) -> (B, G).

    G = 4H (gates i, f, g, o) for an LSTM, H for an RNN. Two ``addmm`` on the layer's own parameters
    (no copies, no cache), so the result follows every parameter update and carries gradients.
    """
    _check_one_layer(layer, "cell_gates")
    if layer.bias:
        gates = torch.addmm(layer.bias_ih_l0 + layer.bias_hh_l0, x, layer.weight_ih_l0.t())  # (B, G)
    else:
        gates = torch.mm(x, layer.weight_ih_l0.t())  # (B, G)
    return torch.addmm(gates, h, layer.weight_hh_l0.t())  # (B, G)


def _lstm_update(gates: torch.Tensor, c: torch.Tensor):
    """Pre-activations (B, 4H) in torch's gate order (i, f, g, o), c (B, H) -> (h', c')."""
    i, f, g, o = gates.chunk(4, dim=1)  # (B, H) each
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def lstm_cell(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, layer: nn.LSTM):
    """One step of a one-layer ``nn.LSTM``: x (B, in), h, c (B, H) -> (h', c') (B, H) each."""
    return _lstm_update(cell_gates(x, h, layer), c)


def split_input(x: torch.Tensor, layer: nn.LSTM) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher forcing of a one-layer LSTM whose input at step t is cat([x_t, z_t]), x known up front
    (the words) and z computed step by step (an attention context): x (B, T, X) -> (x's share of the
    gates with both biases, for all steps at once (B, T, 4H); the weight (Z + H, 4H) that maps
    cat([z_t, h]) to the rest). One large matmul replaces T small ones; ``lstm_cell_split`` steps."""
    _check_one_layer(layer, "split_input")
    X = x.size(-1)
    bias = layer.bias_ih_l0 + layer.bias_hh_l0 if layer.bias else None
    pre = torch.nn.functional.linear(x, layer.weight_ih_l0[:, :X], bias)  # (B, T, 4H)
    return pre, torch.cat([layer.weight_ih_l0[:, X:], layer.weight_hh_l0], dim=1).t()  # (Z + H, 4H)


def lstm_cell_split(pre_t: torch.Tensor, z: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weight: torch.Tensor):
    """One step after ``split_input``: pre_t (B, 4H), z (B, Z), h, c (B, H) -> (h', c'); equals
    ``lstm_cell(cat([x_t, z]), h, c, layer)``."""
    return _lstm_update(torch.addmm(pre_t, torch.cat([z, h], dim=1), weight), c)


def rnn_cell(x: torch.Tensor, h: torch.Tensor, layer: nn.RNN) -> torch.Tensor:
    """One step of a one-layer ``nn.RNN``: x (B, in), h (B, H) -> h' (B, H)."""
    pre = cell_gates(x, h, layer)  # (B, H)
    return torch.tanh(pre) if layer.nonlinearity == "tanh" else torch.relu(pre)


def run_layer(layer: nn.RNNBase, x: torch.Tensor, init=None):
    """``layer(x, init)`` over whole sequences (one fused call): x (B, T, in) -> (out (B, T, H), last).

    Under CPU bf16 autocast (``train.amp = "bf16"``) on a CPU without native bf16 (no AVX512-BF16/AMX),
    oneDNN has no bf16 LSTM primitive and the call fails: the layer then runs in fp32 (the linear
    layers around it stay in bf16). Elsewhere this is exactly ``layer(x, init)``.
    """
    if (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and not torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        if init is not None:
            init = tuple(t.float() for t in init) if isinstance(init, tuple) else init.float()
        with torch.autocast("cpu", enabled=False):
            return layer(x.float(), init)
    return layer(x, init)


def _unit(kind: str, in_dim: int, hidden: int) -> nn.Module:
    if kind == "lstm":
        return nn.LSTM(in_dim, hidden, batch_first=True)
    return nn.RNN(in_dim, hidden, nonlinearity="tanh", batch_first=True)


class LRCNStack(nn.Module):
    """Word embedding + 1 or 2 recurrent layers + output layer, conditioned on a visual vector."""

    def __init__(self, cfg: RecurrentConfig, vocab_size: int, visual_dim: int, pad_id: int = 0):
        super().__init__()
        self.cfg, self.vocab_size, self.visual_dim = cfg, vocab_size, visual_dim
        self.embed = nn.Embedding(vocab_size, cfg.embed, padding_idx=pad_id)
        self.drop = nn.Dropout(cfg.dropout)
        H, E, D = cfg.hidden, cfg.embed, visual_dim
        if cfg.variant == "1u":
            layers = [_unit(cfg.unit, E + D, H)]
        elif cfg.variant == "2u":
            layers = [_unit(cfg.unit, E + D, H), _unit(cfg.unit, H, H)]
        else:  # 2f: the first layer only sees language; the image enters the second layer
            layers = [_unit(cfg.unit, E, H), _unit(cfg.unit, H + D, H)]
        self.layers = nn.ModuleList(layers)
        self.out = nn.Linear(H, vocab_size)
        if cfg.unit == "lstm" and cfg.forget_bias:
            with torch.no_grad():  # gate order i, f, g, o: rows [H, 2H) are the forget gate
                for layer in self.layers:
                    layer.bias_ih_l0[H:2 * H].fill_(cfg.forget_bias)
                    layer.bias_hh_l0[H:2 * H].zero_()

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def _layer_input(self, i: int, x: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """Concatenate the visual feature onto layer i's input where the variant says so."""
        feeds_visual = (i == 0) if self.cfg.variant in ("1u", "2u") else (i == 1)
        if not feeds_visual:
            return x
        if x.dim() == 3:  # (B, T, *): visual repeated over time
            visual = visual.unsqueeze(1).expand(-1, x.size(1), -1)  # (B, T, D)
        return torch.cat([x, visual], dim=-1)  # (B, [T,] in + D)

    def hidden_states(self, tokens: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) long, visual (B, D) -> top-layer hidden states (B, T, H)."""
        x = self.drop(self.embed(tokens))  # (B, T, E)
        for i, layer in enumerate(self.layers):
            x, _ = run_layer(layer, self._layer_input(i, x, visual))  # (B, T, H)
            x = self.drop(x)
        return x

    def forward(self, tokens: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: tokens (B, T) (BOS first), visual (B, D) -> logits (B, T, V)."""
        return self.out(self.hidden_states(tokens, visual))

    def init_state(self, visual: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """visual (B, D) -> decoding state (h_1, c_1, ..., h_L, c_L, visual), all batch-first.

        The RNN unit has no cell; its c slots stay zero so that every variant has one layout.
        """
        B, H = visual.size(0), self.cfg.hidden
        zeros = visual.new_zeros(B, H)
        return tuple(zeros for _ in range(2 * self.num_layers)) + (visual,)

    def step(self, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """One decoding step: tokens (B,) long -> (logp (B, V) float32, new state)."""
        visual = state[-1]  # (B, D)
        x = self.drop(self.embed(tokens))  # (B, E)
        new_state = []
        for i, layer in enumerate(self.layers):
            h, c = state[2 * i], state[2 * i + 1]  # (B, H) each
            inp = self._layer_input(i, x, visual)  # (B, in)
            if self.cfg.unit == "lstm":
                h, c = lstm_cell(inp, h, c, layer)  # (B, H) each
            else:
                h = rnn_cell(inp, h, layer)  # (B, H); c stays zero
            x = self.drop(h)  # (B, H)
            new_state += [h, c]
        logits = self.out(x)  # (B, V)
        return torch.log_softmax(logits.float(), dim=-1), tuple(new_state) + (visual,)
