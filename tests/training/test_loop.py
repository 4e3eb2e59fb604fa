"""The trainer's fine-tuning machinery: accumulation, checkpoints and exact resume, pairs read from files."""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch

from geo_dfm.errors import JobCancelled
from geo_dfm.pairs import open_pairs
from geo_dfm.progress import Progress
from geo_dfm.training import LoopOptions, TrainConfig, train_contrastive
from geo_dfm.training.checkpoint import list_checkpoints
from geo_dfm.training.images import EvalPreprocess
from tests.training.conftest import colour_images
from tile_tools.errors import InputError

PREPROCESS = EvalPreprocess(32, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)


def _tokenizer():
    return open_clip.get_tokenizer("ViT-B-32", context_length=16)


class CancelAfter(Progress):
    """Cancels the run once ``steps`` training steps are done."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def advance(self, n: int = 1) -> None:
        super().advance(n)
        if self.stage_name == "train" and self.done >= self.steps:
            self.cancel_event.set()
            self.check_cancelled()


def test_accumulated_micro_batches_give_the_big_batch_gradient(tiny_clip):
    """Two micro-batches of 8 (features cached, one graph at a time) give the gradient of the
    contrastive loss over all 16 pairs at once."""
    from geo_dfm.training.data import Batch
    from geo_dfm.training.loss import contrastive_loss
    from geo_dfm.training.trainer import _accumulated_backward

    items = colour_images(16)
    images = PREPROCESS.to_uint8([image for image, _, _ in items])
    tokens = _tokenizer()([caption for _, caption, _ in items])
    groups = torch.tensor([group for *_, group in items])
    big, small = tiny_clip().train(), tiny_clip().train()
    pixels = PREPROCESS.normalise(images)
    loss = contrastive_loss(
        big.encode_image(pixels, normalize=True),
        big.encode_text(tokens, normalize=True),
        big.logit_scale.exp(),
        groups,
    )
    loss.backward()
    micro = [Batch(images[:8], tokens[:8], groups[:8]), Batch(images[8:], tokens[8:], groups[8:])]
    value = _accumulated_backward(small, micro, PREPROCESS, torch.device("cpu"), None, None)
    assert torch.allclose(value, loss)
    reference = dict(big.named_parameters())
    for name, param in small.named_parameters():
        expected = reference[name].grad
        assert torch.allclose(
            param.grad, expected, rtol=1e-4, atol=1e-7 + 1e-5 * float(expected.abs().max())
        ), name


def test_resume_from_a_mid_run_checkpoint_ends_at_the_same_weights(tiny_clip, pairs_csv, tmp_path):
    pairs = open_pairs(pairs_csv)
    config = TrainConfig(steps=6, batch_size=8, lr=5e-3, warmup_steps=2, device="cpu", seed=4)
    straight = tiny_clip()
    train_contrastive(straight, _tokenizer(), pairs, config, preprocess=PREPROCESS)

    folder = tmp_path / "checkpoints"
    loop = LoopOptions(checkpoint_dir=folder, checkpoint_every=2, fingerprint="run-a", keep_checkpoints=5)
    interrupted = tiny_clip()
    with pytest.raises(JobCancelled):
        train_contrastive(interrupted, _tokenizer(), pairs, config, CancelAfter(3), PREPROCESS, loop)
    assert [step for step, _ in list_checkpoints(folder)] == [2]  # step 3 ran, its state is lost
    resumed = tiny_clip()
    result = train_contrastive(
        resumed,
        _tokenizer(),
        open_pairs(pairs_csv),
        config,
        preprocess=PREPROCESS,
        loop=LoopOptions(**{**vars(loop), "resume": True}),
    )
    assert result.resumed_from == 2 and len(result.history) == 6
    expected = straight.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in resumed.state_dict().items())

    with pytest.raises(InputError, match="another run|other data"):
        train_contrastive(
            tiny_clip(), _tokenizer(), pairs, config, preprocess=PREPROCESS,
            loop=LoopOptions(checkpoint_dir=folder, resume=True, fingerprint="run-b"),
        )  # fmt: skip


def test_an_unreadable_image_is_skipped_and_reported_with_its_path(tiny_clip, pairs_csv, caplog):
    broken = pairs_csv.parent / "images" / "005.png"
    pairs = open_pairs(pairs_csv)
    broken.write_bytes(broken.read_bytes()[:60])  # truncated after the header check: fails when decoded
    config = TrainConfig(steps=8, batch_size=8, lr=1e-3, device="cpu")
    result = train_contrastive(tiny_clip(), _tokenizer(), pairs, config, preprocess=PREPROCESS)
    assert len(result.skipped) == 1 and result.skipped[0].startswith(str(broken))
    assert str(broken) in caplog.text
    assert result.images_seen == 8 * 8 - 2  # two epochs of 4 batches, one image short in each


def test_streamed_shards_train_reproducibly(tiny_clip, tmp_path):
    import io

    from PIL import Image

    from geo_dfm.pairs import ShardPairs, write_shards

    def samples():
        for i, (image, caption, group) in enumerate(colour_images(20)):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            yield f"s{i:04d}", {"png": buffer.getvalue(), "txt": caption.encode(), "cls": str(group).encode()}

    write_shards(samples(), tmp_path, per_shard=7)
    config = TrainConfig(steps=4, batch_size=8, lr=1e-3, device="cpu")
    first, second = tiny_clip(), tiny_clip()
    a = train_contrastive(first, _tokenizer(), ShardPairs(tmp_path), config, preprocess=PREPROCESS)
    b = train_contrastive(second, _tokenizer(), ShardPairs(tmp_path), config, preprocess=PREPROCESS)
    assert a.losses == b.losses and a.pairs == 20
    assert not torch.equal(first.visual.conv1.weight, tiny_clip().visual.conv1.weight)
    copy.deepcopy(first)  # trained models stay plain modules


def test_learning_rate_warms_up_linearly_then_follows_a_cosine(tiny_clip, pairs_csv):
    """The lr of every step (train_log.csv's column) against the schedule written out here."""
    import math

    config = TrainConfig(
        steps=7, batch_size=8, lr=1e-2, warmup_steps=3, min_lr_ratio=0.1, device="cpu", augment=False
    )
    result = train_contrastive(
        tiny_clip(), _tokenizer(), open_pairs(pairs_csv), config, preprocess=PREPROCESS
    )
    expected = [1e-2 * (s + 1) / 3 for s in range(3)] + [
        1e-2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 3) / 4))) for s in range(3, 7)
    ]
    assert [r.lr for r in result.history] == pytest.approx(expected, rel=1e-6)


def test_the_progress_bar_shows_loss_and_images_per_second(tiny_clip, pairs_csv):
    import io

    from geo_dfm.progress import BarProgress

    stream = io.StringIO()
    config = TrainConfig(steps=3, batch_size=8, lr=1e-3, device="cpu")
    result = train_contrastive(
        tiny_clip(), _tokenizer(), open_pairs(pairs_csv), config, BarProgress(stream=stream), PREPROCESS,
        LoopOptions(log_every=1),
    )  # fmt: skip
    shown = stream.getvalue()
    assert "train" in shown and f"loss={result.losses[-1]:.4g}" in shown and "images_per_second=" in shown
