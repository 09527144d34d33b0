"""Video pooling with RNN Fisher Vectors (Lev et al., ECCV 2016, section 3, applied to action
recognition), beside plain mean pooling.

  frame features (T, D) -> standardise -> regression RNN LM (predicts the next frame's feature)
  -> closed-form Fisher vector (gradient of the LM loss w.r.t. its output layer, ``captionkit.fisher``)
  -> PCA (fit on training videos) -> power (alpha = 1/2) + L2 normalisation -> linear classifier
Mean pooling averages the frame features instead (then the same power + L2 and classifier). Mean
pooling ignores the order of frames; the RNN-FV does not, so on the time-reversed class pairs of the
synthetic videos it separates what mean pooling cannot.

Frame features come from any ``frames (B, T, C, S, S) -> (B, T, D)`` function, e.g. the CNN of a
trained activity checkpoint (``ActivityRecognizer.features``).

Shape legend: N videos, T frames, D feature size, F Fisher-vector size, P PCA size, K classes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .rnn import SentenceLM, SentenceLMConfig, fisher_vectors, pca_fit, train_lm


@dataclass
class VideoFisherConfig:
    hidden: int = 100           # regression LM size (Lev et al.: 100)
    lm_epochs: int = 30
    lm_lr: float = 3e-3
    lm_batch: int = 16
    pca_dim: int = 128          # 0 = no PCA
    alpha: float = 0.5          # power normalisation exponent
    clf_epochs: int = 300       # full-batch Adam on the linear classifier
    clf_lr: float = 1e-2
    weight_decay: float = 1e-4
    seed: int = 0


def power_l2(x: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """(N, F) -> sign(x)|x|^alpha, then each row L2-normalised."""
    x = x.sign() * x.abs().pow(alpha)
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)


def standardiser(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Training sequences [(T_i, D)] -> per-dimension (mean (D,), std (D,)) over all their frames."""
    allf = torch.cat(seqs)  # (sum T_i, D)
    return allf.mean(0), allf.std(0).clamp(min=1e-6)


def mean_pool(train: list[torch.Tensor], test: list[torch.Tensor], alpha: float = 0.5):
    """Mean pooling: sequences [(T_i, D)] -> (N_train, D), (N_test, D) after power + L2."""
    pool = lambda seqs: power_l2(torch.stack([s.mean(0) for s in seqs]), alpha)  # noqa: E731
    return pool(train), pool(test)


def rnn_fv_pool(train: list[torch.Tensor], test: list[torch.Tensor], cfg: VideoFisherConfig, log=print):
    """RNN-FV pooling: sequences [(T_i, D)] -> (N_train, P), (N_test, P); the LM and PCA see training only."""
    mean, std = standardiser(train)
    train = [(s - mean) / std for s in train]
    test = [(s - mean) / std for s in test]
    torch.manual_seed(cfg.seed)
    lm = SentenceLM(SentenceLMConfig(kind="regression", hidden=cfg.hidden, epochs=cfg.lm_epochs, lr=cfg.lm_lr,
                                     batch_size=cfg.lm_batch, seed=cfg.seed), in_dim=train[0].size(1))
    train_lm(lm, train, log=log)
    fv_train, fv_test = fisher_vectors(lm, train), fisher_vectors(lm, test)  # (N, F) each
    if cfg.pca_dim and cfg.pca_dim < fv_train.size(1):
        mu, comps = pca_fit(fv_train, min(cfg.pca_dim, fv_train.size(0)))  # (F,), (F, P)
        fv_train, fv_test = (fv_train - mu) @ comps, (fv_test - mu) @ comps  # (N, P)
    return power_l2(fv_train, cfg.alpha), power_l2(fv_test, cfg.alpha)


def train_linear(x: torch.Tensor, y: torch.Tensor, num_classes: int, cfg: VideoFisherConfig) -> nn.Linear:
    """A softmax linear classifier on (N, F) features with labels (N,), full-batch Adam."""
    torch.manual_seed(cfg.seed)
    clf = nn.Linear(x.size(1), num_classes)
    opt = torch.optim.Adam(clf.parameters(), lr=cfg.clf_lr, weight_decay=cfg.weight_decay)
    for _ in range(cfg.clf_epochs):
        loss = nn.functional.cross_entropy(clf(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return clf


def compare_pooling(train: list[torch.Tensor], y_train: torch.Tensor, test: list[torch.Tensor],
                    y_test: torch.Tensor, num_classes: int, cfg: VideoFisherConfig = VideoFisherConfig(),
                    log=print) -> dict[str, float]:
    """Test accuracy of mean pooling and of RNN-FV pooling, each with a linear classifier."""
    out = {}
    for name, (xtr, xte) in (("mean", mean_pool(train, test, cfg.alpha)),
                             ("rnn_fv", rnn_fv_pool(train, test, cfg, log=log))):
        clf = train_linear(xtr, y_train, num_classes, cfg)
        with torch.no_grad():
            out[name] = (clf(xte).argmax(1) == y_test).float().mean().item()
    return out


@torch.no_grad()
def video_frame_features(features_fn, frames_list, crop: int, device: torch.device | str = "cpu",
                         chunk: int = 64) -> list[torch.Tensor]:
    """Whole videos [(T_i, H, W, C) uint8] -> centre-cropped frame features [(T_i, D)].

    ``features_fn`` maps frames (1, T, C, S, S) to (1, T, D), e.g. ``ActivityRecognizer.features``.
    """
    from ..data.video import center_crop, to_tensor

    out = []
    for frames in frames_list:
        clip = to_tensor(center_crop(frames[:], crop))  # (T, C, S, S)
        parts = [features_fn(clip[i:i + chunk].unsqueeze(0).to(device))[0].cpu()
                 for i in range(0, len(clip), chunk)]  # [(t, D)]
        out.append(torch.cat(parts))  # (T, D)
    return out


def compare_on_checkpoint(checkpoint_path: str, cfg: VideoFisherConfig = VideoFisherConfig(),
                          device: str = "cpu", log=print) -> dict[str, float]:
    """Mean vs RNN-FV pooling of the frozen CNN features of an activity checkpoint, on its own
    train / test lists (every frame of each whole video, centre crop)."""
    from ..tasks.activity import frame_loader, read_lists
    from ..tasks.loading import load_checkpoint

    task, model = load_checkpoint(checkpoint_path, "activity", device)
    classes, train, test = read_lists(task.cfg.data)
    load, crop = frame_loader(task.cfg.data), task.cfg.encoder.image_size
    feats = {name: video_frame_features(model.features, [load(v.path) for v in vids], crop, device)
             for name, vids in (("train", train), ("test", test))}
    labels = {name: torch.tensor([v.label for v in vids]) for name, vids in (("train", train), ("test", test))}
    return compare_pooling(feats["train"], labels["train"], feats["test"], labels["test"], len(classes), cfg, log)
