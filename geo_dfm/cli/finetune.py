"""`geo-dfm finetune --pairs PAIRS --model NAME -o OUT --method lora`: make a domain model from pairs."""

from __future__ import annotations

import click

from geo_dfm.cli.options import model_options, output_options, progress_options
from geo_dfm.training.method_options import METHODS, TOWERS


@click.command(name="finetune")
@click.option(
    "--pairs",
    required=True,
    type=click.Path(path_type=str),
    help="Training pairs: a CSV/Parquet table (image_path,caption), an ImageFolder, or tar shards "
    "(shards.tar, a folder of them, or data-{000000..000009}.tar).",
)
@output_options
@click.option("--method", type=click.Choice(METHODS), default="lora", show_default=True, help="What trains.")
@click.option(
    "--images-dir", type=click.Path(path_type=str), default=None, help="Root of relative image paths."
)
@click.option(
    "--image-column", default=None, help="The table's image column (default: image_path, filename, …)."
)
@click.option(
    "--caption-column", default=None, help="The table's caption column (default: caption, title, …)."
)
@click.option("--encoding", default=None, help="The table's text encoding (default UTF-8, else GB18030).")
@click.option(
    "--pair-templates", default="rs105", show_default=True, help="Caption templates of an ImageFolder."
)
@click.option(
    "--gsd", type=float, default=None, help="Ground sampling distance (m/px) for ImageFolder captions."
)
@click.option(
    "--rank", type=click.IntRange(min=1), default=8, show_default=True, help="Adapter rank (LoRA, LoHa)."
)
@click.option("--alpha", type=float, default=None, help="Adapter scaling numerator (default 2 × rank).")
@click.option("--dropout", type=float, default=0.0, show_default=True, help="Adapter dropout (LoRA, LoHa).")
@click.option(
    "--towers", type=click.Choice(TOWERS), default="both", show_default=True,
    help="Towers that get adapters.",
)  # fmt: skip
@click.option(
    "--oft-block-size", type=click.IntRange(min=1), default=16, show_default=True, help="OFT block size."
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=None, help="Optimizer steps (wins over --epochs)."
)
@click.option("--epochs", type=float, default=1.0, show_default=True, help="Passes over the pairs.")
@click.option("--lr", type=float, default=None, help="Peak learning rate (default: per method).")
@click.option("--weight-decay", type=float, default=0.1, show_default=True, help="AdamW weight decay.")
@click.option(
    "--warmup-steps", type=click.IntRange(min=0), default=10, show_default=True, help="Warm-up steps."
)
@click.option("--min-lr-ratio", type=float, default=0.0, show_default=True, help="Final LR / peak LR.")
@click.option(
    "--accumulate", type=click.IntRange(min=1), default=1, show_default=True,
    help="Micro-batches of --batch-size per step (the loss sees them all).",
)  # fmt: skip
@click.option("--grad-clip", type=float, default=1.0, show_default=True, help="Gradient norm clip (0: off).")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of initialisation, order, augmentation."
)
@click.option(
    "--augment/--no-augment", default=True, show_default=True, help="Random flips and 90° rotations."
)
@click.option(
    "--checkpoint-every", type=click.IntRange(min=1), default=None, help="Checkpoint every N steps."
)
@click.option(
    "--checkpoint-dir", type=click.Path(path_type=str), default=None,
    help="Checkpoint folder (default: OUT.checkpoints beside the output).",
)  # fmt: skip
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint.")
@click.option("--keep-checkpoints", is_flag=True, help="Keep the checkpoints after a successful run.")
@click.option(
    "--val-dir", type=click.Path(path_type=str), default=None, help="Validation ImageFolder (zero-shot)."
)
@click.option(
    "--val-classnames", default=None, help="Comma-separated class names for --val-dir (sorted order)."
)
@click.option(
    "--val-templates", default="rs105", show_default=True, help="Templates of the zero-shot validation."
)
@click.option("--val-csv", type=click.Path(path_type=str), default=None, help="Validation retrieval table.")
@click.option("--val-images", type=click.Path(path_type=str), default=None, help="Images of --val-csv.")
@click.option("--validate-every", type=click.IntRange(min=1), default=None, help="Validate every N steps.")
@click.option("--merge", is_flag=True, help="Also write the adapter merged into OUT/model.safetensors.")
@click.option(
    "--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Image reading threads."
)
@model_options
@progress_options
def finetune(**options) -> None:
    """Fine-tune a CLIP model on image–text pairs (InfoNCE, AdamW, cosine schedule).

    Adapters (lora, ia3, loha, oft) are written as a peft folder: use it with --adapter OUT in
    every command. full / frozen-text / frozen-image write OUT/model.safetensors (use --weights).
    OUT also holds model_card.json, train_log.csv, train_plot.png and summary.json.
    --batch-size is the training batch; --precision bf16/fp16 uses autocast on a GPU.

    Example: geo-dfm finetune --pairs pairs/pairs.csv --model georsclip-vit-b-32 --method lora -o lora/
    """
    from geo_dfm.cli.runner import run_registered

    names = options.pop("val_classnames")
    classnames = tuple(name.strip() for name in names.split(",") if name.strip()) if names else None
    run_registered("finetune", options, val_classnames=classnames)
