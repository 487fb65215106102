"""`edge-app anomaly ...` commands."""

import typer

app = typer.Typer(help="Train, evaluate and run visual anomaly inspection.", no_args_is_help=True)
