"""SiteWise: TQVs, IoT rules vs the real AWS fixtures and botocore's models, asset models, direct ingestion."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from edge_app.errors import EdgeAppError
from edge_app.events import AnomalyResult, BinCompleted, CountUpdate
from edge_app.publish.messages import MessageBuilder
from edge_app.sitewise.cli import app as sitewise_app
from edge_app.sitewise.direct import MAX_ENTRIES_PER_CALL, MAX_VALUES_PER_ENTRY, SiteWiseDirectPublisher
from edge_app.sitewise.measurements import FPS, TRAYS_TOTAL, split_timestamp, tqv
from edge_app.sitewise.models import LINE_MODEL_EXTERNAL_ID, alias_table, line_asset_model, site_asset_model
from edge_app.sitewise.rule import as_api_entry, render_entries, topic_matches, topic_rules
from edge_app.sitewise.validate import validate_request

FIXTURES = Path("/work/shared/fixtures/sitewise")
if not FIXTURES.is_dir():
    FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sitewise"
RULE_FIXTURES = sorted(FIXTURES.glob("*sitewise-rule-payload*.json"))
needs_fixtures = pytest.mark.skipif(not RULE_FIXTURES, reason=f"AWS documentation fixtures not found in {FIXTURES}")
ROLE = "arn:aws:iam::123456789012:role/EdgeAppSiteWise"


def _load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _sitewise_client():  # noqa: ANN202
    return boto3.client("iotsitewise", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


# ---------------------------------------------------------------- TQVs
@pytest.mark.parametrize("t, seconds, nanos", [(1_700_000_000.25, 1_700_000_000, 250_000_000),
                                               (1_700_000_000.999999, 1_700_000_000, 999_999_000),
                                               (0.0, 0, 0)])
def test_timestamp_split_is_exact(t: float, seconds: int, nanos: int) -> None:
    assert split_timestamp(t) == {"timeInSeconds": seconds, "offsetInNanos": nanos}


def test_tqv_types_and_quality() -> None:
    assert tqv(TRAYS_TOTAL, 47.0, 10.5)["value"] == {"integerValue": 47}
    assert tqv(FPS, 14, 10.5, "UNCERTAIN") == {"timestamp": {"timeInSeconds": 10, "offsetInNanos": 500_000_000},
                                                "quality": "UNCERTAIN", "value": {"doubleValue": 14.0}}
    bad = tqv(FPS, math.nan, 1.0)
    assert bad["quality"] == "BAD" and bad["value"] == {"doubleValue": 0.0}


# ---------------------------------------------------------------- rules
@pytest.mark.parametrize("fixture", RULE_FIXTURES, ids=lambda p: p.name)
def test_real_aws_rule_payloads_pass_the_validator(fixture: Path) -> None:
    """The validator accepts the AWS documentation's own rules (so it is checking the right shape)."""
    validate_request("iot", "CreateTopicRule", {"ruleName": "doc_example", "topicRulePayload": _load(fixture.name)})


def test_validator_rejects_broken_rules() -> None:
    good = topic_rules("edge-app/plant", ROLE)[0]
    no_role = json.loads(json.dumps(good))
    del no_role["topicRulePayload"]["actions"][0]["iotSiteWise"]["roleArn"]
    with pytest.raises(EdgeAppError, match="roleArn"):
        validate_request("iot", "CreateTopicRule", no_role)
    with pytest.raises(EdgeAppError, match="ruleName"):
        validate_request("iot", "CreateTopicRule", {**good, "ruleName": "has-dashes"})


@needs_fixtures
def test_generated_rules_validate_and_have_the_fixtures_structure() -> None:
    rules = topic_rules("edge-app/plant-1", ROLE, error_topic="edge-app/plant-1/sitewise_errors")
    assert [r["ruleName"] for r in rules] == [f"edge_app_plant_1_{k}_to_sitewise"
                                               for k in ("count", "bin", "anomaly", "telemetry")]
    fixture = _load(RULE_FIXTURES[0].name)
    fx_action = fixture["actions"][0]["iotSiteWise"]
    fx_value = fx_action["putAssetPropertyValueEntries"][0]["propertyValues"][0]
    for r in rules:
        validate_request("iot", "CreateTopicRule", r)
        payload = r["topicRulePayload"]
        assert set(fixture) <= set(payload) and payload["awsIotSqlVersion"] == fixture["awsIotSqlVersion"]
        action = payload["actions"][0]["iotSiteWise"]
        assert set(action) == set(fx_action)
        for entry in action["putAssetPropertyValueEntries"]:
            value = entry["propertyValues"][0]
            assert set(fx_value) <= set(value) <= {"timestamp", "value", "quality"}
            assert set(value["timestamp"]) == {"timeInSeconds", "offsetInNanos"}


@needs_fixtures
def test_fixture_rule_renders_its_paired_message_into_a_valid_batch_put() -> None:
    """Our template evaluator on the real AWS pair (topic-alias rule + its MQTT payload)."""
    rule = {"ruleName": "r", "topicRulePayload": _load(
        "awsdocs__aws-iot-sitewise-user-guide__sitewise-rule-payload.topic-alias.json")}
    message = _load("awsdocs__aws-iot-sitewise-user-guide__mqtt-payload.topic-alias.json")
    topic = "/company/windfarm/3/turbine/7/rpm"
    assert topic_matches(rule["topicRulePayload"]["sql"], topic)
    entries = [as_api_entry(e, str(i)) for i, e in enumerate(render_entries(rule, topic, message))]
    assert entries == [{"entryId": "0", "propertyAlias": topic, "propertyValues": [
        {"timestamp": {"timeInSeconds": 1581368533}, "value": {"doubleValue": 38.3}}]}]
    validate_request("iotsitewise", "BatchPutAssetPropertyValue", {"entries": entries})


def _messages() -> list:
    b = MessageBuilder("plant-1", "edge-app/plant-1", epoch="e1")
    return [
        b.for_event(CountUpdate(stream="cam1", line="line-1", t=5, local=7, global_count=48, bins_completed=2, bin_id=3,
                                wall_time=1_700_000_000.5)),
        b.for_event(BinCompleted(stream="cam1", line="line-1", bin_id=3, trays=24, start_t=0, end_t=5,
                                 global_count=72, wall_time=1_700_000_010.0)),
        b.for_event(AnomalyResult(stream="cam1", line="line-1", t=5, score=0.31, is_anomalous=False, area_percent=0,
                                  wall_time=1_700_000_011.0)),
        b.telemetry("line-1", "cam1", {"fps": 12.5}, 1_700_000_012.0),
    ]


def test_our_rules_turn_our_messages_into_valid_batch_puts_with_the_right_values() -> None:
    rules = topic_rules("edge-app/plant-1", ROLE)
    seen: dict[str, object] = {}
    for msg in _messages():
        payload = json.loads(msg.payload)
        matching = [r for r in rules if topic_matches(r["topicRulePayload"]["sql"], msg.topic)]
        assert len(matching) == 1, msg.topic
        entries = [as_api_entry(e, str(i)) for i, e in enumerate(render_entries(matching[0], msg.topic, payload))]
        validate_request("iotsitewise", "BatchPutAssetPropertyValue", {"entries": entries})
        for e in entries:
            seen[f"{payload['type']}:{e['propertyAlias']}"] = (e["propertyValues"][0]["value"],
                                                               e["propertyValues"][0]["timestamp"])
    stamp = {"timeInSeconds": 1_700_000_000, "offsetInNanos": 500_000_000}
    assert seen["count:/plant-1/line-1/trays_in_bin"] == ({"integerValue": 7}, stamp)
    assert seen["count:/plant-1/line-1/trays_total"][0] == {"integerValue": 48}
    assert seen["bin:/plant-1/line-1/trays_total"][0] == {"integerValue": 72}
    assert seen["bin:/plant-1/line-1/bins_completed"][0] == {"integerValue": 3}
    assert seen["anomaly:/plant-1/line-1/anomaly_score"][0] == {"doubleValue": 0.31}
    assert seen["telemetry:/plant-1/line-1/fps"][0] == {"doubleValue": 12.5}


# ---------------------------------------------------------------- asset models
def test_asset_models_validate_and_the_site_holds_lines() -> None:
    line, site = line_asset_model(), site_asset_model()
    validate_request("iotsitewise", "CreateAssetModel", line)
    validate_request("iotsitewise", "CreateAssetModel", site)
    assert {p["name"] for p in line["assetModelProperties"]} >= {"trays_in_bin", "trays_total", "bins_completed",
                                                                  "fps", "anomaly_score"}
    assert site["assetModelHierarchies"][0]["childAssetModelId"] == f"externalId:{LINE_MODEL_EXTERNAL_ID}"
    table = alias_table("plant-1", ["line-1", "line-2"])
    assert {"line": "line-2", "property": "fps", "propertyAlias": "/plant-1/line-2/fps"} in table


def test_asset_model_validator_catches_a_wrong_data_type() -> None:
    bad = line_asset_model()
    bad["assetModelProperties"][0]["dataType"] = "INT"
    with pytest.raises(EdgeAppError, match="dataType"):
        validate_request("iotsitewise", "CreateAssetModel", bad)


# ---------------------------------------------------------------- direct ingestion (botocore Stubber)
def _values(alias: str, n: int, start: int = 1_700_000_000) -> list[dict]:
    return [{"propertyAlias": alias, **tqv(TRAYS_TOTAL, i, start + i)} for i in range(n)]


class _Recorder:
    def __init__(self, client: object) -> None:
        self.requests: list[dict] = []
        client.meta.events.register("provide-client-params.iotsitewise.BatchPutAssetPropertyValue",  # type: ignore[attr-defined]
                                    lambda params, **kw: self.requests.append(json.loads(json.dumps(params))))


def test_direct_respects_entry_and_value_limits_and_sends_everything_once() -> None:
    client = _sitewise_client()
    rec = _Recorder(client)
    values = _values("/p/l1/trays_total", 23) + _values("/p/l2/trays_total", 3) + [
        v for i in range(12) for v in _values(f"/p/x{i}/fps", 1)]
    with Stubber(client) as stub:
        for _ in range(3):  # 16 entries, but l1's 3 entries must go in 3 different calls: 3 is the minimum
            stub.add_response("batch_put_asset_property_value", {"errorEntries": []})
        result = SiteWiseDirectPublisher(client, sleep=lambda s: None).put(values)
        stub.assert_no_pending_responses()
    assert result.accepted == len(values) and result.rejected == [] and result.calls == len(rec.requests) == 3
    sent = []
    for req in rec.requests:
        assert len(req["entries"]) <= MAX_ENTRIES_PER_CALL
        aliases = [e["propertyAlias"] for e in req["entries"]]
        assert len(aliases) == len(set(aliases))
        for e in req["entries"]:
            assert 1 <= len(e["propertyValues"]) <= MAX_VALUES_PER_ENTRY
            sent += [(e["propertyAlias"], v["timestamp"]["timeInSeconds"]) for v in e["propertyValues"]]
    assert sorted(sent) == sorted((v["propertyAlias"], v["timestamp"]["timeInSeconds"]) for v in values)
    l1 = [t for a, t in sent if a == "/p/l1/trays_total"]
    assert l1 == sorted(l1)  # oldest first across calls


def test_direct_retries_only_the_failed_retryable_values() -> None:
    client = _sitewise_client()
    rec = _Recorder(client)
    a, b = _values("/p/l1/trays_total", 5), _values("/p/l2/trays_total", 2)
    delays: list[float] = []
    throttled = [a[1]["timestamp"], a[3]["timestamp"]]
    with Stubber(client) as stub:
        stub.add_response("batch_put_asset_property_value", {"errorEntries": [
            {"entryId": "0", "errors": [{"errorCode": "ThrottlingException", "errorMessage": "slow down",
                                         "timestamps": throttled}]},
            {"entryId": "1", "errors": [{"errorCode": "TimestampOutOfRangeException", "errorMessage": "too old",
                                         "timestamps": [b[0]["timestamp"]]}]}]})
        stub.add_client_error("batch_put_asset_property_value", "ThrottlingException", http_status_code=429)
        stub.add_response("batch_put_asset_property_value", {"errorEntries": []})
        result = SiteWiseDirectPublisher(client, sleep=delays.append, base_delay_s=0.1).put(a + b)
        stub.assert_no_pending_responses()
    assert result.accepted == 6 and result.retried == 4 and len(delays) == 2
    assert [r["errorCode"] for r in result.rejected] == ["TimestampOutOfRangeException"]
    retry = rec.requests[-1]["entries"]
    assert [(e["propertyAlias"], [v["timestamp"] for v in e["propertyValues"]]) for e in retry] == [
        ("/p/l1/trays_total", throttled)]


def test_direct_gives_up_after_max_attempts_and_reports() -> None:
    client = _sitewise_client()
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_client_error("batch_put_asset_property_value", "ServiceUnavailableException", http_status_code=503)
        result = SiteWiseDirectPublisher(client, max_attempts=3, sleep=lambda s: None).put(_values("/p/a/fps", 2))
    assert result.accepted == 0 and [r["errorCode"] for r in result.rejected] == ["ServiceUnavailableException"]


def test_direct_sends_message_payload_tqvs() -> None:
    client = _sitewise_client()
    rec = _Recorder(client)
    with Stubber(client) as stub:
        stub.add_response("batch_put_asset_property_value", {"errorEntries": []})
        result = SiteWiseDirectPublisher(client).put_messages(json.loads(m.payload) for m in _messages())
    assert result.accepted == 7  # 3 (count) + 2 (bin) + 1 (anomaly) + 1 (fps)
    aliases = {e["propertyAlias"] for e in rec.requests[0]["entries"]}
    assert "/plant-1/line-1/anomaly_score" in aliases


# ---------------------------------------------------------------- CLI
def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("site: plant-1\nmodel: {path: m.onnx}\nstreams: [{name: cam1, uri: a.mp4, line: line-1}, "
                   "{name: cam2, uri: b.mp4, line: line-2}]\nmqtt: {topic_prefix: edge-app/plant-1}\n",
                   encoding="utf-8")
    return cfg


def test_cli_writes_rules_and_models(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "sw"
    res = runner.invoke(sitewise_app, ["rule", "-c", str(_config(tmp_path)), "--role-arn", ROLE, "-o", str(out)])
    assert res.exit_code == 0, res.output
    rule = json.loads((out / "edge_app_plant_1_count_to_sitewise.json").read_text())
    assert rule["topicRulePayload"]["sql"] == "SELECT * FROM 'edge-app/plant-1/+/count' WHERE schema_version = 1"
    res = runner.invoke(sitewise_app, ["models", "-c", str(_config(tmp_path)), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "site-asset-model.json").read_text()) == site_asset_model()
    aliases = json.loads((out / "property-aliases.json").read_text())
    assert {a["line"] for a in aliases} == {"line-1", "line-2"}


def test_cli_bad_role_arn_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "edge_app.cli", "sitewise", "rule", "-c", str(_config(tmp_path)),
                           "--role-arn", "MyRole", "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: --role-arn:")
