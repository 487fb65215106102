"""Validate a request body against botocore's service model, offline (no credentials, no network).

botocore's `ParamValidator` checks structure, required members, types and lengths; it does not check
string patterns, so those (rule names, ``externalId:`` references, ...) are checked here from the same
model's ``pattern`` metadata.
"""

from __future__ import annotations

import re

import botocore.session
from botocore.model import Shape
from botocore.validate import ParamValidator

from edge_app.errors import EdgeAppError


def validate_request(service: str, operation: str, params: dict) -> None:
    """Raise `EdgeAppError` naming the first problem; return None when ``params`` is a valid request."""
    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    report = ParamValidator().validate(params, model.input_shape)
    if report.has_errors():
        raise EdgeAppError(f"{service}.{operation}: invalid request: {report.generate_report()}")
    problems = list(_pattern_errors(params, model.input_shape, operation))
    if problems:
        raise EdgeAppError(f"{service}.{operation}: invalid request: {problems[0]}")


def _pattern_errors(value: object, shape: Shape, path: str):  # noqa: ANN202 - generator of strings
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                yield from _pattern_errors(value[name], member, f"{path}.{name}")
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            yield from _pattern_errors(item, shape.member, f"{path}[{i}]")
    elif shape.type_name == "string" and isinstance(value, str):
        pattern = shape.metadata.get("pattern")
        if pattern and not _matches(pattern, value):
            yield f"{path}: {value!r} does not match {pattern}"
        enum = shape.enum
        if enum and value not in enum:
            yield f"{path}: {value!r} is not one of {', '.join(enum)}"


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value, flags=re.DOTALL) is not None
    except re.error:  # a Java-only regex construct: leave it to the service
        return True
