"""Print the configuration reference (Markdown) from the pydantic models in edge_app/config.py.

Every key with its type, default and the description written as the attribute's docstring in the source,
so the README's table cannot drift from the code: re-run and paste into README's config section.

    .venv/bin/python scripts/config_reference.py
"""

from __future__ import annotations

import ast
import inspect
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from edge_app import config as config_module
from edge_app.config import AppConfig

# Keys whose models carry no attribute docstring (yet): described here so the table has no blanks.
FALLBACK = {
    "site": "Plant/site id: in every MQTT payload, bin id and SiteWise alias.",
    "state_dir": "Folder of the durable outbox (`outbox.db`) holding queued messages and counter states.",
    "log_level": "Logging level (stderr); `edge-app run --log-level` overrides it.",
    "model": "The tray detector.",
    "model.path": "ONNX file exported from GluonCV SSD / YOLOv3 (training writes `models/tray_detector.onnx`).",
    "model.backend": "`onnxruntime` (CPU, CUDA when present) or `tensorrt` (FP16 engine built from the same ONNX).",
    "model.score_threshold": "Detections below this score are ignored (not counted, not recorded).",
    "model.class_names": "Class names when the model's metadata has none.",
    "streams": "One entry per camera / video; at least one.",
    "streams[].name": "Unique stream name (letters, digits, `_.-`): MQTT payloads, logs, state.",
    "mqtt": "Plain MQTT publishing (paho-mqtt 2, QoS 1, durable outbox).",
    "mqtt.enabled": "Publish at all (false: counter states are still saved).",
    "mqtt.host": "Broker host.",
    "mqtt.port": "Broker port.",
    "mqtt.tls": "TLS to the broker (absent: plain TCP).",
    "mqtt.tls.ca_certs": "CA bundle that signed the broker's certificate.",
    "mqtt.tls.certfile": "Client certificate (mutual TLS).",
    "mqtt.tls.keyfile": "Client private key (mutual TLS).",
    "mqtt.topic_prefix": "Topics are `<prefix>/<line>/count`, `<prefix>/<line>/bin`, `<prefix>/status`, ...",
    "mqtt.client_id": "MQTT client id (unique per device).",
    "mqtt.qos": "MQTT QoS of published messages.",
    "mqtt.keepalive": "Seconds between MQTT keep-alive pings.",
    "mqtt.username": "Broker user name.",
    "mqtt.password": "Broker password.",
    "output": "Optional extra outputs (the `run` command's options override them).",
    "iot_core.enabled": "Use AWS IoT Core instead of the plain MQTT connection.",
    "iot_core.port": "IoT Core MQTT port.",
    "iot_core.cert": "Device certificate PEM.",
    "iot_core.key": "Device private key PEM.",
    "iot_core.client_id": "Thing name / MQTT client id.",
    "iot_core.keepalive": "Seconds between keep-alive pings.",
    "inspections[].name": "Unique inspection name (snapshots, logs).",
    "inspections[].save_snapshots": "Which inspected frames are saved as snapshots with overlays.",
}


def attribute_docs() -> dict[tuple[str, str], str]:
    """``(class name, field name) -> docstring`` for ``field: T = v`` followed by a string literal."""
    tree = ast.parse(Path(inspect.getsourcefile(config_module)).read_text(encoding="utf-8"))
    docs: dict[tuple[str, str], str] = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        body = cls.body
        for stmt, nxt in zip(body, body[1:], strict=False):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[(cls.name, stmt.target.id)] = " ".join(nxt.value.value.split())
    return docs


def model_of(annotation: object) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``Model``, ``Model | None``, ``list[Model]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = model_of(arg)
        if found:
            return found
    return None


def type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (list, tuple):
        inner = ", ".join(type_name(a) for a in typing.get_args(annotation) if a is not Ellipsis)
        return f"{origin.__name__}[{inner}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: object) -> str:
    if field.is_required():  # type: ignore[attr-defined]
        return "**required**"
    value = field.default  # type: ignore[attr-defined]
    if isinstance(value, BaseModel):
        return "(section)"
    if value is None:
        return "null"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{value}`"


def rows(model: type[BaseModel], prefix: str, docs: dict[tuple[str, str], str]) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = model_of(field.annotation)
        is_list = typing.get_origin(field.annotation) is list
        desc = docs.get((model.__name__, name)) or FALLBACK.get(key, "")
        desc = desc.replace("``", "`")
        if sub is not None:
            if not desc and sub.__doc__:
                desc = " ".join(sub.__doc__.split()).replace("``", "`")
            out.append(f"| `{key}` | {'list of sections' if is_list else 'section'} | {default_text(field)} | {desc} |")
            out.extend(rows(sub, f"{key}[].", docs) if is_list else rows(sub, f"{key}.", docs))
        else:
            out.append(f"| `{key}` | {type_name(field.annotation)} | {default_text(field)} | {desc} |")
    return out


def main() -> None:
    print("| key | type | default | meaning |")
    print("|---|---|---|---|")
    print("\n".join(rows(AppConfig, "", attribute_docs())))


if __name__ == "__main__":
    main()
