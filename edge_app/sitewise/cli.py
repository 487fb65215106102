"""`edge-app sitewise ...` commands: write the IoT topic rules and asset models; ingest directly.

Each written JSON file is the exact request body of the AWS API call (``--cli-input-json`` ready).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edge_app.errors import EdgeAppError

app = typer.Typer(help="Generate SiteWise IoT rules and asset models; ingest directly.", no_args_is_help=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML config (site, lines, topic prefix)")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder to write the JSON files into")]


def _write(path: Path, data: object) -> None:
    """Atomic: write a temp file, fsync, rename (a half-written rule must never be deployed)."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@app.command("rule")
def rule(
    config: ConfigOpt,
    role_arn: Annotated[str, typer.Option(help="IAM role the rule assumes (iotsitewise:BatchPutAssetPropertyValue)")],
    out: OutOpt = Path("sitewise"),
    error_topic: Annotated[str | None, typer.Option(help="Republish failed rule actions to this topic")] = None,
) -> None:
    """Write one CreateTopicRule request per message type (count, bin, anomaly, telemetry)."""
    from edge_app.config import load_config
    from edge_app.sitewise.rule import topic_rules
    from edge_app.sitewise.validate import validate_request

    if not role_arn.startswith("arn:"):
        raise EdgeAppError(f"--role-arn: expected an IAM role ARN (arn:aws:iam::<account>:role/<name>), "
                           f"got {role_arn!r}")
    cfg = load_config(config)
    for request in topic_rules(cfg.mqtt.topic_prefix, role_arn, error_topic=error_topic):
        validate_request("iot", "CreateTopicRule", request)
        path = out / f"{request['ruleName']}.json"
        _write(path, request)
        typer.echo(f"wrote {path}  (aws iot create-topic-rule --cli-input-json file://{path})")


@app.command("models")
def models(config: ConfigOpt, out: OutOpt = Path("sitewise")) -> None:
    """Write CreateAssetModel requests (line model, site model with a 'lines' hierarchy) and the alias table."""
    from edge_app.config import load_config
    from edge_app.sitewise.models import alias_table, line_asset_model, site_asset_model
    from edge_app.sitewise.validate import validate_request

    cfg = load_config(config)
    for name, request in (("line-asset-model", line_asset_model()), ("site-asset-model", site_asset_model())):
        validate_request("iotsitewise", "CreateAssetModel", request)
        _write(out / f"{name}.json", request)
        typer.echo(f"wrote {out / f'{name}.json'}")
    lines = sorted({s.line_id for s in cfg.streams})
    _write(out / "property-aliases.json", alias_table(cfg.site, lines, cfg.sitewise.alias_template))
    typer.echo(f"wrote {out / 'property-aliases.json'}  (set these aliases on each line asset's properties)")


@app.command("put")
def put(
    config: ConfigOpt,
    messages: Annotated[Path, typer.Option(help="JSONL of MQTT payloads (as published) to ingest directly")],
) -> None:
    """Direct mode: send the messages' SiteWise TQVs with BatchPutAssetPropertyValue (needs AWS credentials)."""
    from edge_app.config import load_config
    from edge_app.sitewise.direct import SiteWiseDirectPublisher

    cfg = load_config(config)
    try:
        payloads = [json.loads(line) for line in messages.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise EdgeAppError(f"{messages}: expected one JSON message per line ({exc})") from None
    result = SiteWiseDirectPublisher.from_region(cfg.sitewise.region).put_messages(payloads)
    typer.echo(json.dumps({"calls": result.calls, "accepted": result.accepted, "retried": result.retried,
                           "rejected": result.rejected}))
