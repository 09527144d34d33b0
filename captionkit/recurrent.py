"""The LRCN recurrent stack (Donahue et al., LRCN, section 5 and Figure 4).

Three variants of where the visual feature enters (the visual feature is fed at every time step):
  ``1u``  one layer:              layer1([embed(w_t); visual])          -> predict
  ``2u``  two layers, unfactored: layer1([embed(w_t); visual]) -> layer2  -> predict
  ``2f``  two layers, factored:   layer1(embed(w_t)) -> layer2([h1; visual]) -> predict
and two units: ``lstm`` and a vanilla ``rnn`` (tanh) for the paper's RNN ablation.

One module, two entry points: ``forward`` runs whole teacher-forced sequences (one fused cuDNN call
per layer) and ``step`` runs one token for the decoders; a test proves that they agree.

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
            x, _ = layer(self._layer_input(i, x, visual))  # (B, T, H)
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
        x = self.drop(self.embed(tokens)).unsqueeze(1)  # (B, 1, E)
        new_state = []
        for i, layer in enumerate(self.layers):
            h, c = state[2 * i], state[2 * i + 1]  # (B, H) each
            inp = self._layer_input(i, x, visual)  # (B, 1, in)
            if self.cfg.unit == "lstm":
                x, (h, c) = layer(inp, (h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()))
                h, c = h.squeeze(0), c.squeeze(0)  # (B, H)
            else:
                x, h = layer(inp, h.unsqueeze(0).contiguous())
                h = h.squeeze(0)  # (B, H)
            x = self.drop(x)  # (B, 1, H)
            new_state += [h, c]
        logits = self.out(x.squeeze(1))  # (B, V)
        return torch.log_softmax(logits.float(), dim=-1), tuple(new_state) + (visual,)
