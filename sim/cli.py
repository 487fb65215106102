"""`edge-app sim ...` commands."""

import typer

app = typer.Typer(help="Synthetic packaging-line video, detection scenarios and camera replay.",
                  no_args_is_help=True)
