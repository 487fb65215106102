"""`edge-app panorama ...` commands."""

import typer

app = typer.Typer(help="Build, deploy, inspect and roll back the Panorama application.", no_args_is_help=True)
