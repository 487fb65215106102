"""`edge-app dataset ...`, `edge-app train`, `edge-app eval`."""

import typer

dataset_app = typer.Typer(help="Read Ground Truth manifests, write LST files, split by line.",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach the training commands to the main `edge-app` app."""
    app.add_typer(dataset_app, name="dataset")
