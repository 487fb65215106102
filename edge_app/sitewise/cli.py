"""`edge-app sitewise ...` commands."""

import typer

app = typer.Typer(help="Generate SiteWise IoT rules and asset models; ingest directly.", no_args_is_help=True)
