"""CUDA + mixed precision (run with ``pytest -m gpu`` on a machine with a GPU)."""
import pytest
import torch

from captionkit import checkpoint
from captionkit.tasks import load_task
from captionkit.tasks.loading import load_trained
from captionkit.train import fit

from conftest import tiny_caption_recipe

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")]


@pytest.mark.parametrize("amp", ["bf16", "fp16", "off"])
def test_cuda_training_with_mixed_precision_and_cpu_reload(tmp_path, amp):
    recipe = tiny_caption_recipe(tmp_path / amp, train={"epochs": 2, "device": "cuda", "amp": amp})
    summary = fit(load_task(data=recipe))
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in summary["history"])
    task, model = load_trained(checkpoint.load(tmp_path / amp / "best.pt"), "cpu")  # GPU run -> CPU use
    assert next(model.parameters()).device.type == "cpu"


def test_cuda_and_cpu_decoding_agree(tmp_path):
    from captionkit.tasks.caption_data import load_split
    from captionkit.tasks.caption_generate import caption_source

    fit(load_task(data=tiny_caption_recipe(tmp_path / "r", train={"epochs": 3, "device": "cuda", "amp": "off"})))
    ckpt = checkpoint.load(tmp_path / "r" / "best.pt")
    task, cpu_model = load_trained(ckpt, "cpu")
    _, gpu_model = load_trained(checkpoint.load(tmp_path / "r" / "best.pt"), "cuda")
    src = load_split(task.cfg.data, "val")
    a = caption_source(cpu_model, src, task.vocab, task.cfg.decode, torch.device("cpu"))
    b = caption_source(gpu_model, src, task.vocab, task.cfg.decode, torch.device("cuda"))
    assert [h[0][0] for h in a] == [h[0][0] for h in b]


def test_cuda_finetuning_with_dataloader_workers(tmp_path):
    """A fine-tuned CNN on the GPU with worker processes preprocessing images (the fine-tuning
    recipes use workers=8): workers must not touch the model's CUDA tensors."""
    recipe = tiny_caption_recipe(tmp_path, train={"epochs": 1, "device": "cuda", "workers": 2})
    summary = fit(load_task(data=recipe))
    assert summary["epochs"] == 1 and (tmp_path / "best.pt").is_file()
