"""`geo-dfm eval …`: the RS5M paper's benchmarks (zero-shot, retrieval, AIR-SLT) for any model or map."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from geo_dfm.cli.options import model_options, output_options, progress_options

F = TypeVar("F", bound=Callable[..., Any])


def eval_options(func: F) -> F:
    """Options every ``eval`` subcommand shares: output, cache, decoding threads, published row, model."""
    for option in reversed(
        [
            click.option(
                "--cache",
                type=click.Path(path_type=str),
                default=None,
                help="Folder of cached image embeddings (default: $GEO_DFM_CACHE/eval-embeddings).",
            ),
            click.option("--no-cache", is_flag=True, help="Neither read nor write cached image embeddings."),
            click.option(
                "--workers",
                type=click.IntRange(min=0),
                default=2,
                show_default=True,
                help="Image decoding threads.",
            ),
            click.option(
                "--published",
                default=None,
                help="Published row to compare with (e.g. 'GeoRSCLIP B-32, paper run'; default: the model's).",
            ),
        ]
    ):
        func = option(func)
    return output_options(model_options(progress_options(func)))


@click.group(name="eval")
def evaluate() -> None:
    """Evaluate a model on the RS5M paper's benchmarks; results beside the published numbers.

    Each subcommand writes results.md and results.csv (ours, published, difference) and summary.json
    into -o OUT. Image embeddings are cached, so re-scoring with other prompts encodes no image again.

    Example: geo-dfm eval all rs5m_test_data/ --model georsclip-vit-b-32 -o paper-table/
    """


@evaluate.command(name="zeroshot")
@click.argument("dataset_dir", type=click.Path(path_type=str))
@click.option(
    "--dataset",
    type=click.Choice(["aid", "resisc45", "eurosat", "folder"]),
    default="folder",
    show_default=True,
    help="The benchmark (folder rules and published numbers); folder: any ImageFolder.",
)
@click.option(
    "--templates",
    default="rs105",
    show_default=True,
    help="Prompt templates: rs105, remoteclip, skyclip, none, or a file with one '{}' template a line.",
)
@click.option(
    "--classnames",
    default=None,
    help="Prompt names, one per class folder in sorted order: comma-separated or a file (one a line).",
)
@eval_options
def zeroshot(dataset_dir: str, **options: Any) -> None:
    """Zero-shot classification of DATASET_DIR (one folder of images per class).

    Class names are the folder names with _ and / as spaces, lower case; per class the 105 RS
    templates are averaged. OUT gets top-1/top-5, per_class.csv, confusion.csv/png, predictions.csv.

    Example: geo-dfm eval zeroshot rs5m_test_data/AID --dataset aid -o aid/
    """
    from geo_dfm.evaluation.jobs import EvalZeroShotParams, run_eval_zeroshot

    classnames = _names(options.pop("classnames"), "--classnames")
    _run(
        "eval zeroshot",
        EvalZeroShotParams,
        run_eval_zeroshot,
        options,
        dataset_dir=dataset_dir,
        classnames=classnames,
    )


@evaluate.command(name="retrieval")
@click.argument("dataset_dir", type=click.Path(path_type=str))
@click.option(
    "--dataset",
    type=click.Choice(["rsitmd", "rsicd", "csv"]),
    default="csv",
    show_default=True,
    help="rsitmd (rsitmd_test.csv, images/), rsicd (rsicd_test.csv in gb18030, RSICD_images/), csv.",
)
@click.option(
    "--csv", "csv", type=click.Path(path_type=str), default=None, help="Caption table (filename,title)."
)
@click.option(
    "--images", type=click.Path(path_type=str), default=None, help="Images folder (default: DATASET_DIR)."
)
@click.option("--encoding", default=None, help="Text encoding of the table (default utf-8; rsicd gb18030).")
@eval_options
def retrieval(dataset_dir: str, **options: Any) -> None:
    """Image-text retrieval on the captions of DATASET_DIR: R@1/5/10 both ways and mR.

    Example: geo-dfm eval retrieval rs5m_test_data/rsicd --dataset rsicd -o rsicd/
    """
    from geo_dfm.evaluation.jobs import EvalRetrievalParams, run_eval_retrieval

    _run("eval retrieval", EvalRetrievalParams, run_eval_retrieval, options, dataset_dir=dataset_dir)


@evaluate.command(name="selo")
@click.argument("air_slt_dir", type=click.Path(path_type=str))
@click.option(
    "--method",
    default="selo",
    show_default=True,
    help="How localize makes each map: selo (the reference), blend, or any other localize method.",
)
@click.option("--exact", is_flag=True, help="The reference's JPEG round trips of crops and maps (selo).")
@click.option("--scales", default=None, help="SeLo window sizes in pixels (default 256,512,768).")
@click.option(
    "--maps",
    type=click.Path(path_type=str),
    default=None,
    help="Score these maps instead: one grey PNG/TIF per sample index (0.png, 1.tif, …).",
)
@click.option("--save-maps", is_flag=True, help="Keep each scored map as OUT/maps/<index>.tif (8-bit grey).")
@eval_options
def selo(air_slt_dir: str, **options: Any) -> None:
    """Semantic localization on AIR-SLT: Rsu, Ras, Rda, Rmi per sample and averaged.

    Each sample's map comes from localize (--method selo by default) or from --maps.

    Example: geo-dfm eval selo rs5m_test_data/AIR-SLT --model georsclip-vit-b-32 -o airslt/
    """
    from geo_dfm.evaluation.jobs import EvalSeloParams, run_eval_selo

    _run("eval selo", EvalSeloParams, run_eval_selo, options, air_slt_dir=air_slt_dir)


@evaluate.command(name="all")
@click.argument("test_data_dir", type=click.Path(path_type=str))
@click.option(
    "--only", default=None, help="Comma-separated benchmarks: AID,RESISC45,EuroSAT,RSITMD,RSICD,AIR-SLT."
)
@click.option("--templates", default="rs105", show_default=True, help="Prompt templates for zero-shot.")
@click.option("--method", default="selo", show_default=True, help="localize method for AIR-SLT.")
@click.option("--exact", is_flag=True, help="The reference's JPEG round trips (AIR-SLT, selo).")
@click.option("--save-maps", is_flag=True, help="Keep the AIR-SLT maps (OUT/AIR-SLT/maps/).")
@eval_options
def all_benchmarks(test_data_dir: str, **options: Any) -> None:
    """The paper's whole table for one model on an unzipped rs5m_test_data folder.

    Runs AID, RESISC45, EuroSAT (zero-shot), RSITMD, RSICD (retrieval) and AIR-SLT (SeLo), whichever
    are present, and writes results.md/results.csv with the published numbers and the difference.

    Example: geo-dfm eval all rs5m_test_data/ --model georsclip-vit-b-32 -o paper-table/
    """
    from geo_dfm.evaluation.jobs import EvalAllParams, run_eval_all

    only = _names(options.pop("only"), "--only", files=False)
    _run("eval all", EvalAllParams, run_eval_all, options, test_data_dir=test_data_dir, only=only)


def _names(text: str | None, flag: str, files: bool = True) -> tuple[str, ...] | None:
    """Comma-separated names, or (``files``) a text file with one name a line."""
    from geo_dfm.errors import InputError

    if text is None:
        return None
    if files and Path(text).is_file():
        lines = Path(text).read_text(encoding="utf-8").splitlines()
        names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    else:
        names = [part.strip() for part in text.split(",")]
    if not names or not all(names):
        raise InputError(flag, "give names separated by commas (or a file with one name a line)")
    return tuple(names)


def _run(command: str, params_class: type, run: Callable, options: dict[str, Any], **values: Any) -> None:
    from geo_dfm.cli.runner import OPTION_ALIASES, run_job
    from geo_dfm.jobs.params import params_from_options

    def job(progress):
        params = params_from_options(params_class, {**options, **values}, OPTION_ALIASES)
        return run(params, progress)

    summary = run_job(command, job, options["progress_mode"], options["print_json"])
    if options["progress_mode"] != "jsonl" and not options["print_json"]:
        click.echo(Path(summary["outputs"]["table"]).read_text(encoding="utf-8"), nl=False)
