"""``edge-app panorama deploy | status | rollback``: publish a built release and run it on an appliance.

Publishing a package version does what ``panorama-cli package-application`` does, through boto3:
``create_package`` (or find it with ``list_packages``), upload every asset binary and descriptor to the
package's ``StorageLocation`` (``<Bucket>/<BinaryPrefixLocation>/<sha256 name>``), upload package.json to
``<ManifestPrefixLocation>/<version>/<patch>.json`` and ``register_package_version`` with the patch version
(the SHA-256 of package.json). A version already registered with the same patch is skipped (re-running a
deploy is safe); with a different patch it is refused: versions are immutable, build a new one.

Deploying creates an application instance with the release's graph as ``ManifestPayload`` (``PayloadData``
= the graph.json text) and optional ``ManifestOverridesPayload``, replacing the instance running on the
device (``ApplicationInstanceIdToReplace``), then polls ``describe_application_instance`` until
``DEPLOYMENT_SUCCEEDED`` or a failure status (or the timeout). Every outcome is written to a local
deploy-state file (atomic writes) with the manifest that was deployed, so:

* a failed deployment is rolled back at once (unless ``--no-rollback``): the last version that succeeded on
  that device is deployed again, replacing the failed instance;
* ``rollback`` re-deploys the version that ran before the current one.

Package versions stay registered (they are immutable), so a rollback only creates an application instance.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_app.errors import EdgeAppError
from edge_app.panorama import manifests
from edge_app.panorama.build import Release, sha256_file
from edge_app.panorama.project import check_overrides, interfaces_of

log = logging.getLogger(__name__)

SUCCEEDED = "DEPLOYMENT_SUCCEEDED"
FAILED = frozenset({"DEPLOYMENT_FAILED", "DEPLOYMENT_ERROR", "REMOVAL_PENDING", "REMOVAL_REQUESTED",
                    "REMOVAL_IN_PROGRESS", "REMOVAL_FAILED", "REMOVAL_SUCCEEDED"})
ACL = "bucket-owner-full-control"


def instance_name(application: str, version: str) -> str:
    """Instance names allow letters, digits, ``-`` and ``_`` only: ``tray-counter-v1_3``."""
    return f"{application}-v{version.replace('.', '_')}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DeployState:
    """``{"devices": {device_id: {"history": [entry, ...]}}}``, oldest entry first.

    An entry: ``version``, ``instance_id``, ``status``, ``at``, ``kind`` (deploy | auto-rollback |
    rollback), ``replaced`` (instance id), ``manifest`` and ``overrides`` (the payload texts, so a rollback
    needs nothing but this file).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.data: dict = manifests.read_json(self.path) if self.path.is_file() else {"devices": {}}

    def history(self, device: str) -> list[dict]:
        return self.data["devices"].setdefault(device, {"history": []})["history"]

    def current(self, device: str) -> dict | None:
        """The entry running on the device: the newest that succeeded."""
        return next((e for e in reversed(self.history(device)) if e["status"] == SUCCEEDED), None)

    def previous(self, device: str) -> dict | None:
        """The newest succeeded entry of another version than the current one (what rollback returns to)."""
        current = self.current(device)
        if current is None:
            return None
        for entry in reversed(self.history(device)):
            if entry["status"] == SUCCEEDED and entry["version"] != current["version"]:
                return entry
        return None

    def record(self, device: str, entry: dict) -> None:
        self.history(device).append(entry)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.data, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@dataclass
class DeployOutcome:
    version: str
    instance_id: str
    status: str
    rolled_back_to: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == SUCCEEDED


class Deployer:
    def __init__(self, panorama: Any, s3: Any, state: DeployState, *, poll_interval_s: float = 15.0,
                 timeout_s: float = 1800.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.panorama = panorama
        self.s3 = s3
        self.state = state
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.clock = clock

    # -- packages ---------------------------------------------------------------------------------------
    def _find_package(self, name: str) -> str | None:
        kwargs: dict[str, Any] = {"MaxResults": 25}
        while True:
            page = self.panorama.list_packages(**kwargs)
            for item in page.get("Packages", []):
                if item.get("PackageName") == name:
                    return str(item["PackageId"])
            if not page.get("NextToken"):
                return None
            kwargs["NextToken"] = page["NextToken"]

    def _package(self, name: str) -> tuple[str, dict]:
        package_id = self._find_package(name)
        if package_id is None:
            created = self.panorama.create_package(PackageName=name)
            log.info("created package %s (%s)", name, created["PackageId"])
            return str(created["PackageId"]), created["StorageLocation"]
        return package_id, self.panorama.describe_package(PackageId=package_id)["StorageLocation"]

    def _registered_patch(self, package_id: str, version: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            found = self.panorama.describe_package_version(PackageId=package_id, PackageVersion=version)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
        return str(found["PatchVersion"])

    def _upload(self, bucket: str, key: str, path: Path) -> None:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=bucket, Key=key)
            log.info("s3://%s/%s already there", bucket, key)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        self.s3.upload_file(str(path), bucket, key, ExtraArgs={"ACL": ACL})

    def publish_packages(self, release: Release) -> list[dict]:
        """Upload and register every package version of ``release`` (see module docstring)."""
        published = []
        for pkg in release.info["packages"]:
            package_json = release.path / pkg["package_json"]
            patch = sha256_file(package_json)
            if patch != pkg["patch_version"]:
                raise EdgeAppError(f"{package_json}: changed after the build (sha256 {patch[:12]}..., release.json "
                                   f"says {pkg['patch_version'][:12]}...); releases are immutable: build a new one")
            package_id, location = self._package(pkg["name"])
            registered = self._registered_patch(package_id, pkg["version"])
            if registered == patch:
                log.info("package %s %s already registered (patch %s)", pkg["name"], pkg["version"], patch[:12])
                published.append({"name": pkg["name"], "package_id": package_id, "skipped": True})
                continue
            if registered is not None:
                raise EdgeAppError(f"package {pkg['name']} version {pkg['version']} is already registered with another "
                                   f"patch ({registered[:12]}...); versions are immutable: build a new version")
            bucket = location["Bucket"]
            for asset in pkg["assets"]:
                path = release.path / "assets" / asset["uri"]
                if sha256_file(path) != asset["sha256"]:
                    raise EdgeAppError(f"{path}: content does not match its sha256 name; rebuild the release")
                self._upload(bucket, f"{location['BinaryPrefixLocation']}/{asset['uri']}", path)
            self._upload(bucket, f"{location['ManifestPrefixLocation']}/{pkg['version']}/{patch}.json", package_json)
            self.panorama.register_package_version(PackageId=package_id, PackageVersion=pkg["version"],
                                                   PatchVersion=patch, MarkLatest=True)
            log.info("registered package %s %s (patch %s)", pkg["name"], pkg["version"], patch[:12])
            published.append({"name": pkg["name"], "package_id": package_id, "skipped": False})
        return published

    # -- application instances ------------------------------------------------------------------------------
    def wait(self, instance_id: str) -> str:
        """Poll until success, a failure status or the timeout (reported as ``TIMEOUT``)."""
        deadline = self.clock() + self.timeout_s
        while True:
            found = self.panorama.describe_application_instance(ApplicationInstanceId=instance_id)
            status = str(found.get("Status", ""))
            if status == SUCCEEDED or status in FAILED:
                if status != SUCCEEDED:
                    log.error("instance %s: %s %s", instance_id, status, found.get("StatusDescription", ""))
                return status
            if self.clock() >= deadline:
                log.error("instance %s: still %s after %.0f s", instance_id, status, self.timeout_s)
                return "TIMEOUT"
            log.info("instance %s: %s", instance_id, status)
            self.sleep(self.poll_interval_s)

    def _create(self, *, application: str, version: str, device: str, manifest: str, overrides: str | None,
                replace: str | None, role_arn: str | None, kind: str) -> dict:
        request: dict[str, Any] = {
            "Name": instance_name(application, version),
            "Description": f"{application} {version} ({kind})",
            "ManifestPayload": {"PayloadData": manifest},
            "DefaultRuntimeContextDevice": device,
        }
        if overrides:
            request["ManifestOverridesPayload"] = {"PayloadData": overrides}
        if replace:
            request["ApplicationInstanceIdToReplace"] = replace
        if role_arn:
            request["RuntimeRoleArn"] = role_arn
        instance_id = str(self.panorama.create_application_instance(**request)["ApplicationInstanceId"])
        log.info("deploying %s %s to %s as %s (%s)", application, version, device, instance_id, kind)
        status = self.wait(instance_id)
        entry = {"version": version, "instance_id": instance_id, "status": status, "at": _now(), "kind": kind,
                 "replaced": replace, "application": application, "manifest": manifest, "overrides": overrides,
                 "runtime_role_arn": role_arn}
        self.state.record(device, entry)
        return entry

    def deploy(self, release: Release, device: str, *, overrides: str | None = None, role_arn: str | None = None,
               rollback_on_failure: bool = True) -> DeployOutcome:
        if overrides:
            check_release_overrides(release, overrides)
        previous = self.state.current(device)
        self.publish_packages(release)
        entry = self._create(application=release.info["application"], version=release.version, device=device,
                             manifest=release.manifest_payload(), overrides=overrides,
                             replace=previous["instance_id"] if previous else None, role_arn=role_arn, kind="deploy")
        outcome = DeployOutcome(release.version, entry["instance_id"], entry["status"])
        if outcome.ok or not rollback_on_failure or previous is None:
            return outcome
        log.warning("deployment of %s failed (%s): rolling back to %s", release.version, entry["status"],
                    previous["version"])
        back = self._redeploy(device, previous, replace=entry["instance_id"], kind="auto-rollback")
        outcome.rolled_back_to = back
        return outcome

    def _redeploy(self, device: str, target: dict, *, replace: str | None, kind: str) -> dict:
        return self._create(application=target["application"], version=target["version"], device=device,
                            manifest=target["manifest"], overrides=target.get("overrides"), replace=replace,
                            role_arn=target.get("runtime_role_arn"), kind=kind)

    def rollback(self, device: str) -> DeployOutcome:
        current = self.state.current(device)
        target = self.state.previous(device)
        if current is None or target is None:
            raise EdgeAppError(f"{self.state.path}: device {device}: no earlier successful version to roll back to")
        entry = self._redeploy(device, target, replace=current["instance_id"], kind="rollback")
        return DeployOutcome(entry["version"], entry["instance_id"], entry["status"])

    def status(self, device: str | None = None) -> dict:
        kwargs: dict[str, Any] = {"MaxResults": 25}
        if device:
            kwargs["DeviceId"] = device
        instances = []
        while True:
            page = self.panorama.list_application_instances(**kwargs)
            instances += page.get("ApplicationInstances", [])
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        devices = [device] if device else sorted(self.state.data["devices"])
        history = {d: [{k: e.get(k) for k in ("version", "instance_id", "status", "at", "kind")}
                       for e in self.state.history(d)] for d in devices}
        current = {d: (self.state.current(d) or {}).get("version") for d in devices}
        return {"instances": [{k: str(i.get(k, "")) for k in ("Name", "ApplicationInstanceId", "Status",
                                                                  "HealthStatus", "DefaultRuntimeContextDevice",
                                                                  "CreatedTime")} for i in instances],
                "current_version": current, "history": history}


def check_release_overrides(release: Release, overrides: str) -> None:
    """Schema and cross-reference checks of an overrides document against the release's graph."""
    try:
        doc = json.loads(overrides)
    except json.JSONDecodeError as exc:
        raise EdgeAppError(f"--overrides: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    manifests.validate(doc, "nodeGraphOverrides", "--overrides")
    graph = json.loads(release.manifest_payload())
    from edge_app.panorama.project import BUILTIN_INTERFACES

    interfaces = dict(BUILTIN_INTERFACES)
    for pkg in release.info["packages"]:
        package_doc = manifests.read_json(release.path / pkg["package_json"])
        interfaces.update(interfaces_of(package_doc, f"{release.info['account']}::{pkg['name']}"))
    check_overrides(doc, graph, interfaces, "--overrides")
