"""Readers for the action datasets of Sharma, Kiros & Salakhutdinov (section 4.1, Table 1), plus the
UCF101 layout (the synthetic sets use it). Each returns (class names, training videos, test videos)
as ``ActionVideo`` items, whose ``labels`` hold one class (multi-class sets) or several (Hollywood2).

  ucf101      ``classInd.txt`` + ``trainlist0N.txt`` / ``testlist0N.txt`` (``captionkit.data.video``)
  ucf11       UCF-11 "YouTube Action": ``<root>/<action>/v_<name>_<GG>/v_<name>_<GG>_<CC>.mpg``;
              there is no official split: videos of groups ``test_groups`` are the test set (the
              paper's 975 / 625 videos), so clips of one group never sit on both sides
  hmdb51      HMDB-51: ``<root>/<class>/<video>.avi`` and the official split files
              ``<splits>/<class>_test_split<N>.txt`` ("<video>.avi 1" train, "2" test, "0" unused)
  hollywood2  Hollywood2 actions: ``<root>/AVIClips/<clip>.avi`` and ``<root>/ClipSets/<Action>_train.txt``
              / ``<Action>_test.txt`` ("<clip> 1" positive, "<clip> -1" negative); multi-label, scored
              by mean average precision
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from . import video as video_io

FORMATS = ("ucf101", "ucf11", "hmdb51", "hollywood2")


@dataclass(frozen=True)
class ActionVideo:
    path: Path
    labels: tuple[int, ...]   # 0-based class indices (one for single-label sets)

    @property
    def label(self) -> int:
        """The class of a single-label video (what accuracy-based evaluation needs)."""
        if len(self.labels) != 1:
            raise UserError(f"{self.path}: {len(self.labels)} labels; multi-label sets are scored by mAP "
                            "(the training validation), not by accuracy")
        return self.labels[0]


Lists = tuple[list[str], list[ActionVideo], list[ActionVideo]]


def read_ucf101_layout(root: Path, splits: Path, split: int) -> Lists:
    classes = video_io.read_class_index(splits / "classInd.txt")
    train, test = (video_io.read_split(splits / f"{kind}list0{split}.txt", root, classes) for kind in ("train", "test"))
    return classes, *([ActionVideo(v.path, (v.label,)) for v in vs] for vs in (train, test))


def read_ucf11(root: Path, test_groups: list[int]) -> Lists:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UserError(f"{root}: no class folders (UCF-11 layout: <action>/v_<name>_<GG>/*.mpg)")
    train, test = [], []
    for label, name in enumerate(classes):
        for path in video_io.list_videos(root / name):
            m = re.search(r"_(\d+)$", path.parent.name) or re.search(r"_(\d+)_\d+$", path.stem)
            if m is None:
                raise UserError(f"{path}: cannot tell its group (expected v_<name>_<GG>/ folders)")
            (test if int(m.group(1)) in test_groups else train).append(ActionVideo(path, (label,)))
    if not train or not test:
        raise UserError(f"{root}: UCF-11 split by test groups {test_groups} leaves an empty side")
    return classes, train, test


def read_hmdb51(root: Path, splits: Path, split: int) -> Lists:
    files = sorted(splits.glob(f"*_test_split{split}.txt"))
    if not files:
        raise UserError(f"{splits}: no HMDB-51 split files *_test_split{split}.txt")
    classes = [f.name[:-len(f"_test_split{split}.txt")] for f in files]
    train, test = [], []
    for label, (name, f) in enumerate(zip(classes, files)):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise UserError(f"{f}:{n}: expected '<video>.avi 0|1|2', got {line.strip()!r}")
            if parts[1] != "0":
                path = video_io.resolve_video(root, f"{name}/{parts[0]}")
                (train if parts[1] == "1" else test).append(ActionVideo(path, (label,)))
    return classes, train, test


def _clip_sets(folder: Path, side: str) -> dict[str, dict[str, bool]]:
    """``<Action>_<side>.txt`` files -> {action: {clip: positive}}."""
    sets = {}
    for f in sorted(folder.glob(f"*_{side}.txt")):
        action = f.name[:-len(f"_{side}.txt")]
        if action == "actions":  # the summary file actions_train.txt is not a class
            continue
        rows = {}
        for n, line in enumerate(f.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("1", "-1"):
                raise UserError(f"{f}:{n}: expected '<clip> 1|-1', got {line.strip()!r}")
            rows[parts[0]] = parts[1] == "1"
        sets[action] = rows
    return sets


def read_hollywood2(root: Path) -> Lists:
    folder = root / "ClipSets"
    if not folder.is_dir():
        raise UserError(f"{root}: no ClipSets/ folder (Hollywood2 layout)")
    lists = []
    for side in ("train", "test"):
        sets = _clip_sets(folder, side)
        if not sets:
            raise UserError(f"{folder}: no <Action>_{side}.txt files")
        classes = sorted(sets)
        clips = sorted({clip for rows in sets.values() for clip in rows})
        videos = [ActionVideo(video_io.resolve_video(root / "AVIClips", clip + ".avi"),
                              tuple(k for k, a in enumerate(classes) if sets[a].get(clip, False)))
                  for clip in clips]
        lists.append((classes, videos))
    if lists[0][0] != lists[1][0]:
        raise UserError(f"{folder}: the train and test files name different actions")
    return lists[0][0], lists[0][1], lists[1][1]


def read_action_set(fmt: str, root: Path, splits: Path, split: int, test_groups: list[int]) -> Lists:
    """Dispatch on ``fmt`` (one of FORMATS)."""
    if fmt == "ucf101":
        return read_ucf101_layout(root, splits, split)
    if fmt == "ucf11":
        return read_ucf11(root, test_groups)
    if fmt == "hmdb51":
        return read_hmdb51(root, splits, split)
    if fmt == "hollywood2":
        return read_hollywood2(root)
    raise UserError(f"data.format must be one of {FORMATS}, got {fmt!r}")
