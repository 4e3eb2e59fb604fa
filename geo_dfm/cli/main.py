"""Entry point of the ``geo-dfm`` command: global options, subcommands, errors → exit codes.

Exit codes: 0 ok, 1 internal error, 2 bad input (usage errors included), 130 cancelled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator

import click

from geo_dfm import __version__
from geo_dfm.cli.lazy_group import LazyGroup
from geo_dfm.errors import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_INTERNAL, EXIT_OK, JobCancelled, exit_status

__all__ = ["EXIT_BAD_INPUT", "EXIT_CANCELLED", "EXIT_INTERNAL", "EXIT_OK", "cli", "main"]

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "chips": ("geo_dfm.cli.chips:chips", "Cut a scene into georeferenced chips and an index GeoPackage."),
    "localize": (
        "geo_dfm.cli.localize:localize",
        "Text-query heatmaps (semantic localization) over a scene.",
    ),
    "classify": ("geo_dfm.cli.classify:classify", "Zero-shot land-cover label for every chip of a scene."),
    "search": ("geo_dfm.cli.search:search", "Find the chips that best match a text, across scenes."),
    "annotate": ("geo_dfm.cli.annotate:annotate", "Classify and/or localize many scenes, resumable."),
    "models": ("geo_dfm.cli.models:models", "List, describe and download the registered RS CLIP models."),
    "demo": ("geo_dfm.cli.demo:demo", "Run localize and classify on a sample scene."),
    "generate": ("geo_dfm.cli.generate:generate", "Remote-sensing images from text prompts (GeoRSSD)."),
    "worker": ("geo_dfm.cli.worker:worker", "Long-lived JSON-lines job server (used by the QGIS plugin)."),
    "finetune": (
        "geo_dfm.cli.finetune:finetune",
        "Fine-tune a domain model on image-text pairs (LoRA, IA3, LoHa, OFT, full, one tower).",
    ),
    "pairs": ("geo_dfm.cli.pairs:pairs", "Training pairs from map labels, or RS filtering of generic pairs."),
    "eval": (
        "geo_dfm.cli.evaluate:evaluate",
        "Evaluate a model or maps on the paper's benchmarks (zero-shot, retrieval, AIR-SLT).",
    ),
    "evaluate": ("geo_dfm.cli.evaluate:evaluate", "Alias of 'eval'."),
}

log = logging.getLogger("geo_dfm")


def configure_logging(verbose: int, quiet: bool) -> None:
    """Log to stderr: WARNING by default, INFO with -v, DEBUG with -vv, ERROR only with -q."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_geo_dfm_cli", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler._geo_dfm_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    logging.getLogger("geo_dfm").setLevel(level)
    logging.getLogger("tile_tools").setLevel(level)


@click.group(
    cls=LazyGroup,
    lazy_commands=SUBCOMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="geo-dfm")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def cli(verbose: int, quiet: bool) -> None:
    """geo-dfm: remote-sensing CLIP models (GeoRSCLIP & co.) for maps.

    Example: geo-dfm localize scene.tif "airport runway" -o runway/
    """
    configure_logging(verbose, quiet)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends a run like Ctrl-C: the job unwinds, temporary outputs are removed, exit 130."""
    raise JobCancelled(f"terminated by signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def handle_termination() -> Iterator[None]:
    """Turn SIGTERM into :class:`JobCancelled` in the main thread while the CLI runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: GDAL's block cache for a geo-dfm process (MiB) unless the user sets ``GDAL_CACHEMAX``; GDAL's own
#: default (5 % of the RAM) would let memory grow with the scene read. Chips are read row by row, so a
#: strip of blocks is what the cache needs; 64 MiB halved the peak growth from a 2 000² to an 8 000²
#: scene against 256 MiB (benchmarks/scale.py), at the cost of decoding some blocks of very wide scenes twice.
GDAL_CACHE_MB = "64"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and turn exceptions into one-line messages and exit codes."""
    os.environ.setdefault("GDAL_CACHEMAX", GDAL_CACHE_MB)
    try:
        with handle_termination():
            cli.main(args=argv, prog_name="geo-dfm", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # pragma: no cover - click>=8.2
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return EXIT_OK
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("geo-dfm: aborted", err=True)
        return EXIT_CANCELLED
    except (Exception, KeyboardInterrupt) as exc:
        status = exit_status(exc)
        if status.code == EXIT_INTERNAL:
            log.debug("internal error", exc_info=True)
            click.echo(f"geo-dfm: {status.message} (run with -vv for the traceback)", err=True)
        elif status.code == EXIT_CANCELLED:
            click.echo(
                "geo-dfm: interrupted" if isinstance(exc, KeyboardInterrupt) else "geo-dfm: cancelled",
                err=True,
            )
        else:
            click.echo(f"geo-dfm: error: {status.message}", err=True)
        return status.code
    return EXIT_OK


def entry_point() -> None:  # pragma: no cover - console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
