"""AWS IoT topic rules that turn the app's MQTT messages into SiteWise ``BatchPutAssetPropertyValue`` calls.

Each message carries ``sitewise.<measurement> = {propertyAlias, timestamp, quality, value}`` (see
``edge_app/publish/messages.py``). One rule per message type selects ``<prefix>/+/<type>`` and has one
``putAssetPropertyValueEntries`` entry per measurement that type carries, every field a substitution
template (``${sitewise.trays_total.value.integerValue}``). Because the alias travels in the payload, one
rule serves every line and site; no rule change when a line is added.

The output of `topic_rules` is exactly the ``CreateTopicRule`` request (``ruleName`` + ``topicRulePayload``),
so ``aws iot create-topic-rule --cli-input-json file://rule.json`` accepts it as is.

`render_entries` evaluates such templates against a payload the way the rules engine does for plain field
paths and ``topic()``: it lets tests (and ``edge-app sitewise rule --preview``) show what SiteWise receives.
"""

from __future__ import annotations

import re

from edge_app.sitewise.measurements import (
    ANOMALY_SCORE,
    BINS_COMPLETED,
    FPS,
    TRAYS_IN_BIN,
    TRAYS_TOTAL,
    Measurement,
)

SQL_VERSION = "2016-03-23"

MEASUREMENTS_BY_TOPIC: dict[str, tuple[Measurement, ...]] = {
    "count": (TRAYS_IN_BIN, TRAYS_TOTAL, BINS_COMPLETED),
    "bin": (TRAYS_TOTAL, BINS_COMPLETED),
    "anomaly": (ANOMALY_SCORE,),
    "telemetry": (FPS,),
}


def rule_name(prefix: str, kind: str) -> str:
    """IoT rule names allow only ``[a-zA-Z0-9_]``: other characters of the prefix become ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}_{kind}_to_sitewise")[:128]


def _entry(m: Measurement) -> dict:
    base = f"sitewise.{m.name}"
    return {
        "propertyAlias": f"${{{base}.propertyAlias}}",
        "propertyValues": [{
            "timestamp": {"timeInSeconds": f"${{{base}.timestamp.timeInSeconds}}",
                          "offsetInNanos": f"${{{base}.timestamp.offsetInNanos}}"},
            "quality": f"${{{base}.quality}}",
            "value": {m.value_key: f"${{{base}.value.{m.value_key}}}"},
        }],
    }


def topic_rules(prefix: str, role_arn: str, *, error_topic: str | None = None) -> list[dict]:
    """``CreateTopicRule`` requests, one per message type that carries SiteWise measurements."""
    rules = []
    for kind, measurements in MEASUREMENTS_BY_TOPIC.items():
        payload: dict = {
            "sql": f"SELECT * FROM '{prefix}/+/{kind}' WHERE schema_version = 1",
            "description": f"edge-app {kind} messages -> SiteWise ({', '.join(m.name for m in measurements)})",
            "ruleDisabled": False,
            "awsIotSqlVersion": SQL_VERSION,
            "actions": [{"iotSiteWise": {"putAssetPropertyValueEntries": [_entry(m) for m in measurements],
                                         "roleArn": role_arn}}],
        }
        if error_topic:
            payload["errorAction"] = {"republish": {"roleArn": role_arn, "topic": error_topic, "qos": 1}}
        rules.append({"ruleName": rule_name(prefix, kind), "topicRulePayload": payload})
    return rules


_TEMPLATE = re.compile(r"\$\{([^}]*)\}")


def _lookup(expr: str, topic: str, payload: dict) -> object:
    expr = expr.strip()
    if expr == "topic()":
        return topic
    node: object = payload
    for part in expr.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"${{{expr}}}: no field {part!r} in the message")
        node = node[part]
    return node


def render(template: object, topic: str, payload: dict) -> object:
    """Substitute ``${field.path}`` / ``${topic()}`` in every string of a rule entry (strings out, like IoT)."""
    if isinstance(template, str):
        return _TEMPLATE.sub(lambda m: str(_lookup(m.group(1), topic, payload)), template)
    if isinstance(template, list):
        return [render(t, topic, payload) for t in template]
    if isinstance(template, dict):
        return {k: render(v, topic, payload) for k, v in template.items()}
    return template


def render_entries(rule: dict, topic: str, payload: dict) -> list[dict]:
    """The ``putAssetPropertyValueEntries`` of a rule's first iotSiteWise action, evaluated for one message."""
    action = next(a["iotSiteWise"] for a in rule["topicRulePayload"]["actions"] if "iotSiteWise" in a)
    return [render(e, topic, payload) for e in action["putAssetPropertyValueEntries"]]  # type: ignore[misc]


def topic_matches(sql: str, topic: str) -> bool:
    """Does the rule's ``FROM '<filter>'`` match ``topic`` (MQTT ``+``/``#`` wildcards)?"""
    found = re.search(r"FROM\s+'([^']+)'", sql)
    if not found:
        return False
    pattern = "^" + re.escape(found.group(1)).replace(r"\+", "[^/]+").replace(r"\#", ".*") + "$"
    return re.match(pattern, topic) is not None


def as_api_entry(rendered: dict, entry_id: str) -> dict:
    """A rendered rule entry (all strings, as the rules engine produces) -> typed BatchPutAssetPropertyValue entry.

    This is the conversion the iotSiteWise action performs before calling SiteWise.
    """
    casts = {"integerValue": int, "doubleValue": float, "stringValue": str,
             "booleanValue": lambda s: str(s).lower() == "true"}
    values = []
    for v in rendered["propertyValues"]:
        ts = {"timeInSeconds": int(float(v["timestamp"]["timeInSeconds"]))}
        if "offsetInNanos" in v["timestamp"]:
            ts["offsetInNanos"] = int(float(v["timestamp"]["offsetInNanos"]))
        typed = {k: casts[k](x) for k, x in v["value"].items()}
        values.append({"timestamp": ts, "value": typed, **({"quality": v["quality"]} if "quality" in v else {})})
    out = {"entryId": entry_id, "propertyValues": values}
    for key in ("propertyAlias", "assetId", "propertyId"):
        if key in rendered:
            out[key] = rendered[key]
    return out
