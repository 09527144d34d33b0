"""Self-critical sequence training for the captioner (Rennie et al. 2017, "SCST").

After cross-entropy training, the captioner is fine-tuned to maximise the CIDEr-D of its own samples:
for each image, K captions are sampled from the model; each gets the reward CIDEr-D(sample) (plus
``scst.meteor`` x METEOR(sample) when set: CIDEr-D alone shortens the captions and lowers METEOR)
minus the mean reward of the image's other K-1 samples (the baseline of Luo 2020, "A better variant of
self-critical sequence training": no extra greedy pass), and the loss is
-(reward - baseline) * log p(sample), averaged over the sampled tokens (EOS included).
CIDEr-D uses document frequencies over the whole training set (``metrics.cider_reward.CiderD``), so
an image's reward does not depend on the batch it is in; METEOR is the Java-free METEOR 1.5
(``metrics.meteor``) against the image's training references, with the paraphrase entries that occur
in the training references (a sample's phrase found nowhere there cannot be a paraphrase match).

Dropout is switched off while sampling and while scoring the samples, so that the gradient is that
of the policy that drew them. The sampler's seed comes from the global RNG, which checkpoints save:
a resumed run draws the same samples.

Shapes: B images in the batch, K samples per image, L max_len, V vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..decoding import PAD, sample_n
from ..metrics.cider_reward import CiderD
from ..metrics.meteor import Meteor
from ..metrics.meteor.normalise import tokens as meteor_tokens
from ..models.attention_captioner import AttentionCaptioner
from ..vocab import Vocab


@dataclass
class SCSTConfig:
    samples: int = 0            # 0 = off (cross-entropy training); K >= 2 = self-critical training
                                # with K samples per image and the mean-of-the-others baseline
    max_len: int = 16           # longest sampled caption (tokens, EOS included)
    temperature: float = 1.0    # samples from softmax(temperature * logits); 1 = the model itself
    after_epochs: int = 0       # 0: every epoch is self-critical (a stage-2 recipe, with train.init_from);
                                # N > 0: cross-entropy for the first N epochs, then self-critical, in one run
    meteor: float = 0.0         # reward = CIDEr-D + meteor * METEOR; 0 = CIDEr-D alone (Rennie et al.)

    def __post_init__(self) -> None:
        if not (isinstance(self.samples, int) and (self.samples == 0 or self.samples >= 2)):
            raise ValueError(f"scst.samples must be 0 (off) or an integer >= 2, got {self.samples!r}")
        if self.max_len < 1:
            raise ValueError(f"scst.max_len must be >= 1, got {self.max_len}")
        if not self.temperature > 0:
            raise ValueError(f"scst.temperature must be > 0, got {self.temperature}")
        if not (isinstance(self.after_epochs, int) and self.after_epochs >= 0):
            raise ValueError(f"scst.after_epochs must be an integer >= 0, got {self.after_epochs!r}")
        if not 0 <= self.meteor < float("inf"):
            raise ValueError(f"scst.meteor must be a finite number >= 0, got {self.meteor!r}")

    def active(self, epoch: int) -> bool:
        """Is epoch ``epoch`` (0-based) self-critical?"""
        return self.samples > 0 and epoch >= self.after_epochs


def training_forward(model: nn.Module, visual: torch.Tensor, inp: torch.Tensor, index: torch.Tensor,
                     mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The training forward of every captioner (also DDP-wrapped): -> (logits (B, T, V), extra loss per
    caption (B,) or None). The attention captioner adds lambda * its doubly stochastic penalty over the
    real steps ``mask`` (B, T); LRCN captioners have none."""
    if isinstance(getattr(model, "module", model), AttentionCaptioner):
        return model(visual, inp, index, mask=mask)
    return model(visual, inp, index), None


class Reward:
    """The reward of (corpus image, sampled caption) pairs: CIDEr-D, plus ``meteor`` x METEOR against
    the image's references. ``corpus[i]`` = image i's reference captions as token lists."""

    def __init__(self, corpus: list[list[list[str]]], meteor: float = 0.0):
        self.cider, self.weight = CiderD(corpus), meteor
        if meteor:
            self.refs = [[meteor_tokens(" ".join(r)) for r in refs] for refs in corpus]
            self.meteor = Meteor([r for refs in self.refs for r in refs])

    def scores(self, images: list[int], captions: list[list[str]]) -> list[float]:
        out = self.cider.scores(images, captions)
        if self.weight:
            best = self.meteor.best_all([meteor_tokens(" ".join(c)) for c in captions], [self.refs[i] for i in images])
            out = [c + self.weight * m for c, (_, m) in zip(out, best)]
        return out


def reward_scorer(captions: list[list[str]], vocab: Vocab, meteor: float = 0.0) -> Reward:
    """The reward over the training corpus: captions[i] = image i's reference captions."""
    return Reward([[vocab.words(c) for c in caps] for caps in captions], meteor)


def scst_loss(model: nn.Module, batch: dict, device: torch.device, vocab: Vocab, scorer: Reward,
              cfg: SCSTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (sum over sampled tokens of -(reward - baseline) * log p, number of sampled tokens)."""
    core = getattr(model, "module", model)  # under DDP the captioner is wrapped
    drops = [m for m in core.modules() if isinstance(m, nn.Dropout)]
    modes = [m.training for m in drops]
    for m in drops:
        m.eval()
    try:
        visual = batch["visual"].to(device)  # (B, D) features or (B, 3, S, S) images
        K = cfg.samples
        with torch.no_grad():
            feats = core.encode(visual) if visual.dim() == 4 else visual
            seed = int(torch.randint(0, 2 ** 62, (1,)).item())
            tokens, _, _ = sample_n(core.step, core.init_state(feats), bos=vocab.bos, eos=vocab.eos,
                                    max_len=cfg.max_len, n=K, temperature=cfg.temperature, seed=seed)
        B, L = tokens.size(0), tokens.size(2)
        tokens = tokens.view(B * K, L)  # (BK, L), PAD after the end
        captions = [vocab.decode(row[row != PAD].tolist()).split() for row in tokens.cpu()]
        images = batch["images"].repeat_interleave(K).tolist()  # (BK,) corpus index of each sample
        reward = torch.tensor(scorer.scores(images, captions), dtype=torch.float32).view(B, K)
        baseline = (reward.sum(dim=1, keepdim=True) - reward) / (K - 1)  # (B, K) mean of the others
        advantage = (reward - baseline).view(B * K, 1).to(device)  # (BK, 1)

        mask = tokens != PAD  # (BK, L) sampled tokens, EOS included
        tgt = tokens.masked_fill(~mask, vocab.pad)
        inp = torch.cat([torch.full((B * K, 1), vocab.bos, dtype=torch.long, device=tgt.device),
                         tgt[:, :-1]], dim=1)  # (BK, L) BOS, then the sample shifted right
        index = torch.arange(B, device=device).repeat_interleave(K)  # (BK,) image of each sample
        logits, _ = training_forward(model, visual, inp, index, mask)  # (BK, L, V); no penalty in SCST
        logp = F.log_softmax(logits.float(), dim=-1).gather(2, tgt.unsqueeze(2)).squeeze(2)  # (BK, L)
        loss_sum = -(advantage * logp * mask).sum()
        return loss_sum, mask.sum()
    finally:
        for m, mode in zip(drops, modes):
            m.train(mode)
