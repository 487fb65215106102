"""Read the Panorama JSON documents and check them against this project's JSON Schemas.

The schemas in ``schemas/`` follow AWS's published manifest schema (envelope ``2021-01-01``) for the
application graph, node packages, descriptors and deployment overrides, plus ``panoramaProject`` for our own
``panorama.json``. Every problem becomes one :class:`EdgeAppError` line naming the file, the JSON path and
what was expected, e.g.::

    graphs/tray-counter/graph.json: nodeGraph.nodes[4].value: 'high' is not of type 'number'
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from edge_app.errors import EdgeAppError

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMAS = ("nodeGraph", "nodeGraphOverrides", "nodePackage", "runtimeDescriptor", "mlModelDescriptor",
           "panoramaProject")


@cache
def _registry() -> Any:
    from referencing import Registry, Resource

    resources = []
    for name in SCHEMAS:
        schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
        resources.append((f"{name}.schema.json", Resource.from_contents(schema)))
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@cache
def validator(kind: str) -> Any:
    """A draft-07 validator for one of :data:`SCHEMAS` (schemas are checked once, when first used)."""
    from jsonschema import Draft7Validator

    if kind not in SCHEMAS:
        raise ValueError(f"unknown schema {kind!r}; expected one of {', '.join(SCHEMAS)}")
    schema = _registry().contents(f"{kind}.schema.json")
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, registry=_registry())


def json_path(parts: Any) -> str:
    """``['nodeGraph', 'nodes', 4, 'value']`` -> ``nodeGraph.nodes[4].value``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def validate(document: Any, kind: str, source: str | Path) -> None:
    """Raise one precise `EdgeAppError` line if ``document`` does not follow schema ``kind``."""
    from jsonschema.exceptions import best_match

    errors = list(validator(kind).iter_errors(document))
    if not errors:
        return
    error = best_match(errors)
    # descend into the most specific branch of if/then/oneOf failures
    while error.context:
        error = best_match(error.context)
    more = len(errors) - 1
    suffix = f" [+{more} more error{'s' if more > 1 else ''}]" if more else ""
    raise EdgeAppError(f"{source}: {json_path(error.absolute_path)}: {error.message:.200}{suffix}")


def read_json(path: Path, label: str | None = None) -> Any:
    """Parse a JSON file; a missing file or a syntax error is one `EdgeAppError` line."""
    label = label or str(path)
    if not path.is_file():
        raise EdgeAppError(f"{label}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EdgeAppError(f"{label}: line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})") from None


def load(path: Path, kind: str, label: str | None = None) -> Any:
    """Read and validate one document."""
    document = read_json(path, label)
    validate(document, kind, label or path)
    return document


def descriptor_kind(document: Any) -> str:
    """``runtimeDescriptor`` or ``mlModelDescriptor`` from a descriptor's single top-level key."""
    if isinstance(document, dict) and len(document) == 1:
        key = next(iter(document))
        if key in ("runtimeDescriptor", "mlModelDescriptor"):
            return key
    return "runtimeDescriptor"  # validation then says what is wrong


def dumps(document: Any) -> str:
    """The canonical text we write (and hash): 4-space indent, key order kept, newline at the end."""
    return json.dumps(document, indent=4) + "\n"
