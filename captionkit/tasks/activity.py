"""Activity recognition with LRCN (Donahue et al., section 4, Table 1) as a ``train.fit`` task.

Training items are random ``clip_len``-frame clips (one per video per epoch, random crop and mirror)
of RGB frames or optical-flow images; the loss is the cross-entropy of every frame's prediction,
averaged over all frames of the batch. Validation classifies each test video from all of its
``clip_len``-frame clips taken every ``stride`` frames: the softmax is averaged over frames and
clips, and the selection metric is the video accuracy. ``models.activity.late_fusion`` combines an RGB and a flow
model as in the paper, with weights (1/2, 1/2) or (1/3, 2/3).

With ``data.synthetic = true`` the data are the built-in order-dependent synthetic videos
(``captionkit.data.synth_video``), written as real AVI files under ``data.root`` on first use.

Shape legend: B clips, L frames per clip, C channels, S crop size, K classes, N videos.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..data import flow as flow_io
from ..data import video as video_io
from ..data.synth_video import SynthVideoSpec, write_synth_videos
from ..encoders import EncoderConfig, build_image_encoder
from ..errors import UserError
from ..metrics.classification import classification_scores
from ..models.activity import ActivityModelConfig, ActivityRecognizer, clip_probabilities, default_hidden
from ..train import TrainConfig
from .base import Task

MODALITIES = ("rgb", "flow")
FUSION_WEIGHTS = {"half": 0.5, "third": 1.0 / 3.0}  # weight of the RGB model; flow gets the rest


@dataclass
class VideoDataConfig:
    root: str = ""                  # dataset root: <Class>/v_*.avi (or flat); synthetic: where to write it
    splits_dir: str = ""            # folder of classInd.txt, trainlist0N.txt, testlist0N.txt; "" = root
    split: int = 1                  # official UCF101 split 1, 2 or 3
    modality: str = "rgb"           # "rgb" frames | "flow" images (LRCN section 4)
    clip_len: int = 16              # frames per clip (the paper: 16)
    stride: int = 8                 # test clips start every `stride` frames (the paper: 8)
    frame_size: list[int] = field(default_factory=lambda: [240, 320])  # (H, W) frames are resized to;
    #                                 crops of encoder.image_size are taken from them (the paper: 227 of 240x320)
    mirror: bool = True             # random horizontal flips in training
    cache_dir: str = ".cache/captionkit/video"  # decoded frames and flow images (.npy per video)
    flow_method: str = "auto"       # "auto" (TV-L1 > DIS > Farneback) | "tvl1" | "dis" | "farneback"
    flow_scale: float = flow_io.DEFAULT_SCALE  # grey levels per pixel of motion in the flow images
    max_val_videos: int = 0         # validate on the first N test videos (0 = all)
    progress: bool = True           # progress bar while decoding / computing flow
    min_decoded: float = video_io.MIN_DECODED  # a video decoding to fewer than this fraction of its
                                    # frames (corrupt, truncated) is an error naming it
    skip_bad: bool = False          # leave such (and unreadable) videos out of training and validation,
                                    # counted on stderr, instead of stopping
    synthetic: bool = False         # use the built-in order-dependent videos (written to root)
    synth: SynthVideoSpec = field(default_factory=SynthVideoSpec)

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"data.modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.flow_method not in flow_io.METHODS:
            raise ValueError(f"data.flow_method must be one of {flow_io.METHODS}, got {self.flow_method!r}")
        if self.clip_len < 1 or self.stride < 1:
            raise ValueError("data.clip_len and data.stride must be positive")
        if len(self.frame_size) != 2 or min(self.frame_size) < 1:
            raise ValueError(f"data.frame_size must be [height, width], got {self.frame_size}")
        if self.split not in (1, 2, 3):
            raise ValueError(f"data.split must be 1, 2 or 3, got {self.split}")
        if self.min_decoded > 1:
            raise ValueError(f"data.min_decoded must be a fraction in [0, 1], got {self.min_decoded}")


@dataclass
class ActivityConfig:
    task: str = "activity"
    data: VideoDataConfig = field(default_factory=VideoDataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    model: ActivityModelConfig = field(default_factory=ActivityModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        crop, (H, W) = self.encoder.image_size, self.data.frame_size
        if crop > min(H, W):
            raise ValueError(f"encoder.image_size={crop} (the crop) is larger than data.frame_size={[H, W]}")


def frame_loader(data: VideoDataConfig):
    """The config's ``path -> (T, H, W, 3) uint8`` loader: RGB frames or flow images, cached."""
    size = tuple(data.frame_size)
    cache = data.cache_dir or None
    if data.modality == "flow":
        return partial(flow_io.load_flow, size=size, cache_dir=cache, method=data.flow_method,
                       scale=data.flow_scale)
    return partial(video_io.load_frames, size=size, cache_dir=cache, min_decoded=data.min_decoded)


def dataset_root(data: VideoDataConfig) -> Path:
    """The data root (writing the synthetic set there first when ``data.synthetic``)."""
    if data.synthetic:
        return write_synth_videos(data.root or ".cache/captionkit/synth_video", data.synth)
    if not data.root:
        raise UserError("data.root is not set: point it at a UCF101-layout folder (or set data.synthetic = true)")
    root = Path(data.root)
    if not root.is_dir():
        raise UserError(f"data.root: folder not found: {root}")
    return root


def read_lists(data: VideoDataConfig) -> tuple[list[str], list[video_io.Video], list[video_io.Video]]:
    """-> (class names, training videos, test videos) from classInd / trainlist0N / testlist0N."""
    root = dataset_root(data)
    splits = Path(data.splits_dir) if data.splits_dir else root
    classes = video_io.read_class_index(splits / "classInd.txt")
    train = video_io.read_split(splits / f"trainlist0{data.split}.txt", root, classes)
    test = video_io.read_split(splits / f"testlist0{data.split}.txt", root, classes)
    return classes, train, test


@torch.no_grad()
def predict_video(model: ActivityRecognizer, frames, data: VideoDataConfig, crop: int,
                  device: torch.device) -> torch.Tensor:
    """frames (T, H, W, C) of one video -> probabilities (K,) averaged over frames and test clips."""
    clips = video_io.test_clips(frames, data.clip_len, data.stride, crop)  # (n, L, C, S, S)
    return clip_probabilities(model, clips.to(device)).cpu()


def predict_videos(model: ActivityRecognizer, paths: list[Path], data: VideoDataConfig, crop: int,
                   device: torch.device, desc: str = "videos") -> torch.Tensor:
    """Video files -> probabilities (N, K) (frames decoded / flow computed through the cache)."""
    from tqdm import tqdm

    load = frame_loader(data)
    model.eval()
    rows = [predict_video(model, load(p), data, crop, device)
            for p in tqdm(paths, desc=desc, unit="video", disable=not data.progress, leave=False)]
    return torch.stack(rows)  # (N, K)


class ActivityTask(Task):
    name = "activity"
    config_class = ActivityConfig
    selection_metric = "accuracy"
    higher_is_better = True

    def setup(self, rank: int = 0, world: int = 1) -> None:
        data = self.cfg.data
        classes, self.train_videos, self.test_videos = read_lists(data)
        if data.max_val_videos:
            self.test_videos = self.test_videos[:data.max_val_videos]
        self.extra["classes"] = classes
        load = frame_loader(data)
        what = "flow" if data.modality == "flow" else "decoding"
        kept = set(video_io.cache_all(self.train_videos + self.test_videos, load, f"{what} (rank {rank})"
                                      if world > 1 else what, data.progress and rank == 0, data.skip_bad))
        self.train_videos = [v for v in self.train_videos if v in kept]
        self.test_videos = [v for v in self.test_videos if v in kept]
        if not self.train_videos or not self.test_videos:
            raise UserError("activity task: no readable training or test videos left (data.skip_bad)")
        self._train_set = video_io.ClipDataset(self.train_videos, load, data.clip_len, self.cfg.encoder.image_size,
                                               mirror=data.mirror, mirror_flow=data.modality == "flow")

    @property
    def classes(self) -> list[str]:
        if "classes" not in self.extra:
            raise UserError("activity task: no class list (call setup() or load a checkpoint)")
        return list(self.extra["classes"])

    def build_model(self) -> nn.Module:
        hidden = self.cfg.model.hidden or default_hidden(self.cfg.data.modality)
        encoder = build_image_encoder(self.cfg.encoder)
        return ActivityRecognizer(self.cfg.model, encoder, len(self.classes), hidden)

    def train_dataset(self):
        return self._train_set

    def data_source(self) -> str:
        d = self.cfg.data
        return (f"built-in synthetic videos (written to {d.root})" if d.synthetic
                else f"{d.modality} videos from {d.root or '.'}")

    def data_sizes(self) -> dict[str, int]:
        return {"train videos": len(self.train_videos), "test videos": len(self.test_videos)}

    def param_groups(self, model: nn.Module, lr: float) -> list[dict]:
        """The fine-tuned CNN gets encoder.lr (when set); the LSTM and classifier get train.lr."""
        enc = [p for p in model.encoder.parameters() if p.requires_grad]
        ids = {id(p) for p in enc}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": rest, "lr": lr}]
        if enc:
            groups.append({"params": enc, "lr": self.cfg.encoder.lr or lr})
        return groups

    def loss(self, model: nn.Module, batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame-level cross-entropy: every frame of every clip predicts the clip's class."""
        clips, labels = batch  # (B, L, C, S, S) uint8, (B,)
        logits = model(clips.to(device, non_blocking=True))  # (B, L, K)
        B, L, K = logits.shape
        target = labels.to(device).unsqueeze(1).expand(B, L).reshape(B * L)  # (B*L,)
        loss_sum = F.cross_entropy(logits.reshape(B * L, K).float(), target, reduction="sum")
        return loss_sum, torch.tensor(B * L)

    def video_lists(self) -> tuple[list[str], list[video_io.Video], list[video_io.Video]]:
        """(class names, training videos, test videos) of the configured data."""
        return read_lists(self.cfg.data)

    def predict_videos(self, model: nn.Module, paths: list[Path], device: torch.device,
                       desc: str = "videos") -> torch.Tensor:
        """Video files -> class probabilities (N, K), as ``classify`` and ``evaluate`` compute them."""
        return predict_videos(model, paths, self.cfg.data, self.cfg.encoder.image_size, device, desc)

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Video accuracy on the test list (softmax averaged over frames and clips)."""
        probs = self.predict_videos(model, [v.path for v in self.test_videos], device, desc="validate")
        labels = torch.tensor([v.label for v in self.test_videos])
        return classification_scores(probs, labels)
