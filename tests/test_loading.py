"""One loading path: every command that opens a checkpoint gives the same one-line error (exit 2)
for a checkpoint of the wrong task, and a checkpoint that loads but does not rebuild is an error too."""
import pytest

from captionkit import checkpoint
from captionkit.cli import main
from captionkit.errors import UserError
from captionkit.tasks.loading import load_checkpoint, read_checkpoint


def fake(path, task: str, **more):
    """A checkpoint file of ``task`` that is readable but holds no usable model."""
    checkpoint.save_atomic({"format": checkpoint.FORMAT, "task": task, "config": {"task": task}, **more}, path)
    return path


@pytest.fixture
def ckpts(tmp_path):
    return {t: fake(tmp_path / f"{t}.pt", t) for t in ("caption", "activity", "describe")}


def one_line_error(capsys, argv, *needles):
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def test_every_command_rejects_a_checkpoint_of_another_task(ckpts, tmp_path, capsys):
    video, image, tuples = tmp_path / "v.avi", tmp_path / "i.png", tmp_path / "t.jsonl"
    for f in (video, image, tuples):
        f.write_bytes(b"x")
    act, cap, desc = ckpts["activity"], ckpts["caption"], ckpts["describe"]
    errors = [
        one_line_error(capsys, ["caption", "--checkpoint", act, image], "'activity' checkpoint", "a captioner"),
        one_line_error(capsys, ["caption", "--checkpoint", cap, "--checkpoint", desc, image], "'describe'"),
        one_line_error(capsys, ["classify", "--checkpoint", cap, video], "'caption' checkpoint", "activity"),
        one_line_error(capsys, ["describe", "--checkpoint", act, "--tuples", tuples], "'activity' checkpoint"),
        one_line_error(capsys, ["evaluate", "--checkpoint", cap, "--checkpoint", act], "'activity' checkpoint"),
        one_line_error(capsys, ["evaluate", "--checkpoint", act, "--fuse-with", desc], "'describe' checkpoint"),
    ]
    # the same sentence everywhere: "<path>: a '<task>' checkpoint; expected ..."
    assert all(": a '" in e and "' checkpoint; expected " in e for e in errors)


def test_library_loaders_use_the_same_check(ckpts):
    with pytest.raises(UserError, match=r"activity\.pt: a 'activity' checkpoint; expected a captioner"):
        load_checkpoint(ckpts["activity"], "caption")
    with pytest.raises(UserError, match="expected a video describer"):
        read_checkpoint(ckpts["caption"], expect="describe")
    assert read_checkpoint(ckpts["caption"])["task"] == "caption"  # expect=None accepts any task


def test_init_from_of_another_task_is_the_same_error(ckpts):
    from captionkit.tasks import load_task
    from captionkit.train import _init_checkpoint

    task = load_task(data={"task": "caption", "train": {"init_from": str(ckpts["activity"])}})
    with pytest.raises(UserError, match="'activity' checkpoint; expected a captioner"):
        _init_checkpoint(task, task.cfg.train)


def test_a_malformed_checkpoint_is_a_one_line_error(tmp_path, capsys):
    bad = fake(tmp_path / "bad.pt", "caption", model={"nonsense": __import__("torch").zeros(1)},
               extra={"vocab": "{}"})
    with pytest.raises(UserError, match="bad.pt: a malformed captionkit checkpoint"):
        load_checkpoint(bad, "caption")
    one_line_error(capsys, ["caption", "--checkpoint", bad, bad], "malformed captionkit checkpoint")


def test_evaluate_may_change_data_settings_only(ckpts, capsys):
    one_line_error(capsys, ["evaluate", "--checkpoint", ckpts["caption"], "--set", "model.hidden=3"],
                   "--set model.hidden=3", "only data.*")
