"""`edge-app panorama deploy | status | rollback` against botocore's Stubber (which validates every request
and response against the vendored Panorama service model) and moto's S3. Never a live account."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parent))
from panorama_helpers import copy_project, fake_container_tar, tiny_mxnet_export  # noqa: E402

from edge_app.errors import EdgeAppError  # noqa: E402
from edge_app.panorama.aws import panorama_client  # noqa: E402
from edge_app.panorama.build import Release, build  # noqa: E402
from edge_app.panorama.deploy import Deployer, DeployState, instance_name  # noqa: E402

ACCOUNT = "210987654321"
DEVICE = "device-0123456789abcdef"
BUCKET = "panorama-packages-test"
REGION = "us-east-1"


def storage(name: str) -> dict:
    return {"Bucket": BUCKET, "RepoPrefixLocation": f"{ACCOUNT}/nodePackages/{name}",
            "GeneratedPrefixLocation": f"{ACCOUNT}/nodePackages/{name}/generated",
            "BinaryPrefixLocation": f"{ACCOUNT}/nodePackages/{name}/binaries",
            "ManifestPrefixLocation": f"{ACCOUNT}/nodePackages/{name}/manifests"}


def package_id(name: str) -> str:
    return f"package-{name.replace('_', '')}"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    root = copy_project(tmp_path / "project")
    paths = {"root": root, "model": tiny_mxnet_export(tmp_path / "model"),
             "container": fake_container_tar(tmp_path / "container.tar"), "out": tmp_path / "build"}
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        client = panorama_client(REGION)
        stubber = Stubber(client)
        state = DeployState(tmp_path / "state" / "deploy-state.json")
        deployer = Deployer(client, s3, state, poll_interval_s=0.0, sleep=lambda _s: None)
        with stubber:
            yield {**paths, "s3": s3, "stubber": stubber, "deployer": deployer, "state": state}
        stubber.assert_no_pending_responses()


def make_release(env: dict, version: str, params: bytes = b"params-v1") -> Release:
    prefix = tiny_mxnet_export(env["model"].parent / f"m{version}", payload=params)
    return build(env["root"], version=version, account=ACCOUNT, container_tar=env["container"], model_prefix=prefix,
                 build_dir=env["out"])


def stub_publish(stubber: Stubber, release: Release, *, exists: bool, registered: dict | None = None) -> None:
    """Expected calls for every package: find/create, version lookup, register (unless already there)."""
    for pkg in release.info["packages"]:
        name, pid = pkg["name"], package_id(pkg["name"])
        if exists:
            stubber.add_response("list_packages", {"Packages": [{"PackageName": "other", "PackageId": "package-x"},
                                                                {"PackageName": name, "PackageId": pid}]},
                                 {"MaxResults": 25})
            stubber.add_response("describe_package", {
                "Arn": f"arn:aws:panorama:{REGION}:{ACCOUNT}:package/{pid}", "CreatedTime": "2026-01-01T00:00:00Z",
                "PackageId": pid, "PackageName": name, "StorageLocation": storage(name), "Tags": {}},
                {"PackageId": pid})
        else:
            stubber.add_response("list_packages", {"Packages": []}, {"MaxResults": 25})
            stubber.add_response("create_package", {"PackageId": pid, "StorageLocation": storage(name)},
                                 {"PackageName": name})
        patch = (registered or {}).get(name)
        if patch is None:
            stubber.add_client_error("describe_package_version", "ResourceNotFoundException", http_status_code=404,
                                     expected_params={"PackageId": pid, "PackageVersion": pkg["version"]})
            stubber.add_response("register_package_version", {}, {
                "PackageId": pid, "PackageVersion": pkg["version"], "PatchVersion": pkg["patch_version"],
                "MarkLatest": True})
        else:
            stubber.add_response("describe_package_version", {
                "IsLatestPatch": True, "PackageId": pid, "PackageName": name, "PackageVersion": pkg["version"],
                "PatchVersion": patch, "Status": "REGISTER_COMPLETED"},
                {"PackageId": pid, "PackageVersion": pkg["version"]})


def stub_instance(stubber: Stubber, *, manifest: str, version: str, instance: str, statuses: list[str],
                  replace: str | None = None, kind: str = "deploy") -> None:
    request = {"Name": instance_name("tray-counter", version), "Description": f"tray-counter {version} ({kind})",
               "ManifestPayload": {"PayloadData": manifest}, "DefaultRuntimeContextDevice": DEVICE}
    if replace:
        request["ApplicationInstanceIdToReplace"] = replace
    stubber.add_response("create_application_instance", {"ApplicationInstanceId": instance}, request)
    for status in statuses:
        stubber.add_response("describe_application_instance", {
            "ApplicationInstanceId": instance, "Status": status, "HealthStatus": "RUNNING",
            "StatusDescription": status.lower()}, {"ApplicationInstanceId": instance})


def test_first_deploy_uploads_registers_and_waits(env: dict) -> None:
    release = make_release(env, "1.0")
    stub_publish(env["stubber"], release, exists=False)
    stub_instance(env["stubber"], manifest=release.manifest_payload(), version="1.0", instance="applicationInstance-a1",
                  statuses=["DEPLOYMENT_PENDING", "DEPLOYMENT_IN_PROGRESS", "DEPLOYMENT_SUCCEEDED"])
    outcome = env["deployer"].deploy(release, DEVICE)
    assert outcome.ok and outcome.instance_id == "applicationInstance-a1" and outcome.rolled_back_to is None
    # S3 holds every asset under BinaryPrefixLocation and package.json under ManifestPrefixLocation/<v>/<patch>.json
    for pkg in release.info["packages"]:
        loc = storage(pkg["name"])
        for asset in pkg["assets"]:
            body = env["s3"].get_object(Bucket=BUCKET, Key=f"{loc['BinaryPrefixLocation']}/{asset['uri']}")["Body"]
            assert body.read() == (release.path / "assets" / asset["uri"]).read_bytes()
        key = f"{loc['ManifestPrefixLocation']}/1.0/{pkg['patch_version']}.json"
        stored = json.loads(env["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read())
        assert stored["nodePackage"]["version"] == "1.0"
    saved = json.loads(env["state"].path.read_text())["devices"][DEVICE]["history"]
    assert [(e["version"], e["status"], e["instance_id"]) for e in saved] == [
        ("1.0", "DEPLOYMENT_SUCCEEDED", "applicationInstance-a1")]
    assert saved[0]["manifest"] == release.manifest_payload()


def test_failed_deployment_rolls_back_to_the_last_good_version(env: dict) -> None:
    good, bad = make_release(env, "1.0"), make_release(env, "1.1", params=b"params-v2")
    stub_publish(env["stubber"], good, exists=False)
    stub_instance(env["stubber"], manifest=good.manifest_payload(), version="1.0", instance="applicationInstance-a1",
                  statuses=["DEPLOYMENT_SUCCEEDED"])
    assert env["deployer"].deploy(good, DEVICE).ok

    stub_publish(env["stubber"], bad, exists=True)
    stub_instance(env["stubber"], manifest=bad.manifest_payload(), version="1.1", instance="applicationInstance-b2",
                  statuses=["DEPLOYMENT_IN_PROGRESS", "DEPLOYMENT_FAILED"], replace="applicationInstance-a1")
    stub_instance(env["stubber"], manifest=good.manifest_payload(), version="1.0", instance="applicationInstance-c3",
                  statuses=["DEPLOYMENT_SUCCEEDED"], replace="applicationInstance-b2", kind="auto-rollback")
    outcome = env["deployer"].deploy(bad, DEVICE)
    assert not outcome.ok and outcome.status == "DEPLOYMENT_FAILED"
    assert outcome.rolled_back_to is not None
    assert (outcome.rolled_back_to["version"], outcome.rolled_back_to["status"]) == ("1.0", "DEPLOYMENT_SUCCEEDED")
    current = env["state"].current(DEVICE)
    assert (current["version"], current["instance_id"]) == ("1.0", "applicationInstance-c3")
    assert [e["kind"] for e in env["state"].history(DEVICE)] == ["deploy", "deploy", "auto-rollback"]


def test_manual_rollback_redeploys_the_previous_version(env: dict) -> None:
    v1, v2 = make_release(env, "1.0"), make_release(env, "1.1", params=b"params-v2")
    stub_publish(env["stubber"], v1, exists=False)
    stub_instance(env["stubber"], manifest=v1.manifest_payload(), version="1.0", instance="applicationInstance-a1",
                  statuses=["DEPLOYMENT_SUCCEEDED"])
    stub_publish(env["stubber"], v2, exists=True)
    stub_instance(env["stubber"], manifest=v2.manifest_payload(), version="1.1", instance="applicationInstance-b2",
                  statuses=["DEPLOYMENT_SUCCEEDED"], replace="applicationInstance-a1")
    env["deployer"].deploy(v1, DEVICE)
    env["deployer"].deploy(v2, DEVICE)
    assert env["state"].current(DEVICE)["version"] == "1.1"
    stub_instance(env["stubber"], manifest=v1.manifest_payload(), version="1.0", instance="applicationInstance-c3",
                  statuses=["DEPLOYMENT_SUCCEEDED"], replace="applicationInstance-b2", kind="rollback")
    outcome = env["deployer"].rollback(DEVICE)
    assert outcome.ok and outcome.version == "1.0"
    assert env["state"].current(DEVICE)["instance_id"] == "applicationInstance-c3"


def test_registered_versions_are_immutable_and_reruns_skip(env: dict) -> None:
    release = make_release(env, "1.0")
    same = {p["name"]: p["patch_version"] for p in release.info["packages"]}
    stub_publish(env["stubber"], release, exists=True, registered=same)
    assert all(p["skipped"] for p in env["deployer"].publish_packages(release))
    assert env["s3"].list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0  # nothing uploaded again

    other = {name: "0" * 64 for name in same}
    first = release.info["packages"][0]
    env["stubber"].add_response("list_packages", {"Packages": [{"PackageName": first["name"],
                                                                "PackageId": package_id(first["name"])}]},
                                {"MaxResults": 25})
    env["stubber"].add_response("describe_package", {
        "Arn": "arn:aws:panorama:us-east-1:210987654321:package/p", "CreatedTime": "2026-01-01T00:00:00Z",
        "PackageId": package_id(first["name"]), "PackageName": first["name"], "StorageLocation": storage(first["name"]),
        "Tags": {}}, {"PackageId": package_id(first["name"])})
    env["stubber"].add_response("describe_package_version", {
        "IsLatestPatch": True, "PackageId": package_id(first["name"]), "PackageName": first["name"],
        "PackageVersion": "1.0", "PatchVersion": other[first["name"]], "Status": "REGISTER_COMPLETED"},
        {"PackageId": package_id(first["name"]), "PackageVersion": ANY})
    with pytest.raises(EdgeAppError, match=r"version 1\.0 is already registered with another patch .*versions are "
                                           r"immutable: build a new version"):
        env["deployer"].publish_packages(release)


def test_a_release_edited_after_build_is_refused(env: dict) -> None:
    release = make_release(env, "1.0")
    package_json = release.path / release.info["packages"][0]["package_json"]
    package_json.write_text(package_json.read_text().replace('"1.0"', '"1.0" '), encoding="utf-8")
    with pytest.raises(EdgeAppError, match=r"changed after the build"):
        env["deployer"].publish_packages(release)


def test_deploy_times_out_and_rollback_needs_history(env: dict) -> None:
    release = make_release(env, "1.0")
    ticks = iter(range(0, 10_000, 600))
    env["deployer"].clock = lambda: float(next(ticks))
    env["deployer"].timeout_s = 1000.0
    stub_publish(env["stubber"], release, exists=False)
    stub_instance(env["stubber"], manifest=release.manifest_payload(), version="1.0", instance="applicationInstance-a1",
                  statuses=["DEPLOYMENT_IN_PROGRESS", "DEPLOYMENT_IN_PROGRESS"])
    outcome = env["deployer"].deploy(release, DEVICE)
    assert outcome.status == "TIMEOUT" and outcome.rolled_back_to is None  # nothing earlier to return to
    with pytest.raises(EdgeAppError, match=r"no earlier successful version to roll back to"):
        env["deployer"].rollback(DEVICE)


def test_overrides_are_checked_against_the_release_before_any_call(env: dict) -> None:
    release = make_release(env, "1.0")
    bad = {"nodeGraphOverrides": {"envelopeVersion": "2021-01-01",
                                  "nodes": [{"name": "t", "interface": "string", "value": "x"}],
                                  "nodeOverrides": [{"replace": "score_threshold", "with": [{"name": "t"}]}]}}
    with pytest.raises(EdgeAppError, match=r"^--overrides: .*t \(string\) cannot replace score_threshold \(float32\)"):
        env["deployer"].deploy(release, DEVICE, overrides=json.dumps(bad))
    example = release.graph_path.parent / "deployment_overrides" / "override_multiple_cameras.json"
    stub_publish(env["stubber"], release, exists=False)
    env["stubber"].add_response("create_application_instance", {"ApplicationInstanceId": "applicationInstance-a1"}, {
        "Name": "tray-counter-v1_0", "Description": "tray-counter 1.0 (deploy)",
        "ManifestPayload": {"PayloadData": release.manifest_payload()},
        "ManifestOverridesPayload": {"PayloadData": example.read_text()}, "DefaultRuntimeContextDevice": DEVICE,
        "RuntimeRoleArn": f"arn:aws:iam::{ACCOUNT}:role/PanoramaApp"})
    env["stubber"].add_response("describe_application_instance", {"Status": "DEPLOYMENT_SUCCEEDED"},
                                {"ApplicationInstanceId": "applicationInstance-a1"})
    outcome = env["deployer"].deploy(release, DEVICE, overrides=example.read_text(),
                                     role_arn=f"arn:aws:iam::{ACCOUNT}:role/PanoramaApp")
    assert outcome.ok


def test_status_lists_instances_and_local_history(env: dict) -> None:
    release = make_release(env, "1.0")
    stub_publish(env["stubber"], release, exists=False)
    stub_instance(env["stubber"], manifest=release.manifest_payload(), version="1.0", instance="applicationInstance-a1",
                  statuses=["DEPLOYMENT_SUCCEEDED"])
    env["deployer"].deploy(release, DEVICE)
    env["stubber"].add_response("list_application_instances", {"ApplicationInstances": [
        {"Name": "tray-counter-v1_0", "ApplicationInstanceId": "applicationInstance-a1",
         "Status": "DEPLOYMENT_SUCCEEDED", "HealthStatus": "RUNNING", "DefaultRuntimeContextDevice": DEVICE}],
        "NextToken": "t2"},
        {"MaxResults": 25, "DeviceId": DEVICE})
    env["stubber"].add_response("list_application_instances", {"ApplicationInstances": []},
                                {"MaxResults": 25, "DeviceId": DEVICE, "NextToken": "t2"})
    report = env["deployer"].status(DEVICE)
    assert [i["ApplicationInstanceId"] for i in report["instances"]] == ["applicationInstance-a1"]
    assert report["current_version"] == {DEVICE: "1.0"}
    assert report["history"][DEVICE][0]["status"] == "DEPLOYMENT_SUCCEEDED"


def test_stubber_checks_against_the_vendored_service_model(env: dict) -> None:
    """Requests and stubbed responses are validated against the vendored model: a response field the service
    does not have, or a request it would reject, fails here rather than on a live account."""
    from botocore.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="DeploymentStatus"):
        env["stubber"].add_response("describe_application_instance", {"DeploymentStatus": "DEPLOYMENT_SUCCEEDED"})
    assert instance_name("tray-counter", "1.3") == "tray-counter-v1_3"  # dots are not allowed in instance names
    with pytest.raises(ParamValidationError):
        panorama_client(REGION).create_application_instance(ManifestPayload={"PayloadData": "{}"})
