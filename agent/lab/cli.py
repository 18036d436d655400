"""``labloop lab``: the virtual lab's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.lab.history import write_history

lab_app = typer.Typer(
    help="The virtual NCM lab: a hidden ground truth, failures and real cycler files.",
    no_args_is_help=True,
)


@lab_app.callback()
def _lab() -> None:
    """The virtual NCM lab (a group, even while it has a single command)."""


@lab_app.command()
def history(
    out: Annotated[Path, typer.Option(help="CSV file to write", metavar="FILE")] = Path(
        "historical.csv"
    ),
    seed: Annotated[
        int, typer.Option(help="random seed: the same seed gives the same file", metavar="N")
    ] = 0,
    rows: Annotated[int, typer.Option(min=1, help="number of past experiments", metavar="N")] = 700,
) -> None:
    """Write a biased historical record (the paper's shape) for `labloop import-history`."""
    path = write_history(out, seed, rows)
    typer.echo(f"wrote {rows} historical experiments (seed {seed}) to {path}")
