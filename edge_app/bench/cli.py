"""`edge-app bench ...`: each benchmark lives in its own module and registers itself here."""

import typer

app = typer.Typer(help="Benchmarks: each prints its figures next to a baseline from the same run.",
                  no_args_is_help=True)

from edge_app.bench.pipeline import bench_pipeline  # noqa: E402

app.command("pipeline")(bench_pipeline)

from edge_app.bench.counting import counting  # noqa: E402

app.command("counting")(counting)

from edge_app.bench.detector import bench_detector  # noqa: E402

app.command("detector")(bench_detector)

from edge_app.bench.outbox import outbox  # noqa: E402

app.command("outbox")(outbox)

from edge_app.bench.capacity import bench_capacity  # noqa: E402

app.command("capacity")(bench_capacity)

from edge_app.bench.anomaly import bench_anomaly  # noqa: E402

app.command("anomaly")(bench_anomaly)
