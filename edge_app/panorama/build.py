"""``edge-app panorama build``: validate the project and write one immutable, versioned release folder.

``<build dir>/<version>/`` (default ``build/panorama/1.3/``) is laid out like a ``panorama-cli`` project
after ``package-application``, with the placeholder account replaced by the real one::

    graphs/<app>/graph.json                      the application manifest (ManifestPayload)
    graphs/<app>/deployment_overrides/*.json     the override examples, same substitution
    packages/<account>-<name>-<version>/         package.json with its assets filled in (+ build context)
    assets/<sha256>.tar.gz, assets/<sha256>.json  asset binaries and descriptors, named by their SHA-256
    release.json                                 what deploy needs: versions, patch versions, asset list

Assets:

* model: the ``.tar.gz`` of ``<prefix>-symbol.json`` + ``<prefix>-0000.params`` that the Panorama/Neo
  compiler expects for MXNet (what ``training.export.export_mxnet`` writes next to the ONNX file). The archive
  is deterministic (sorted members, zero mtimes/owners, gzip mtime 0), so the same model gives the same
  SHA-256 and the same asset name.
* code: the container image of ``packages/<account>-tray_counter_code-*/Dockerfile`` as
  ``docker build`` + ``docker export`` + gzip (what ``panorama-cli build`` does), or a given
  ``--container-tar`` (the output of ``docker export``).

Versions are ``<major>.<minor>`` (Panorama's package version format). Without ``--version`` the build takes the
next minor version after the highest one already built (or panorama.json's version for the first build).
A version that exists is never overwritten: the folder is assembled under a temporary name and renamed into
place, and an existing target is an error.

The package *patch version* is the SHA-256 of the written package.json (as ``panorama-cli`` computes it).
"""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_app.errors import EdgeAppError
from edge_app.panorama import manifests
from edge_app.panorama.project import PackageSource, Project, check_graph, check_overrides, interfaces_of, load_project

VERSION_RE = re.compile(r"^([0-9]+)\.([0-9]+)$")
ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
PLATFORM = "linux/arm64"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "local_sdk", ".pytest_cache")


def version_key(version: str) -> tuple[int, int]:
    match = VERSION_RE.match(version)
    if not match:
        raise EdgeAppError(f"--version: expected <major>.<minor> such as 1.4, got {version!r}")
    return int(match.group(1)), int(match.group(2))


def built_versions(build_dir: Path) -> list[str]:
    """Versions with a complete release (``release.json``) under ``build_dir``, oldest first."""
    if not build_dir.is_dir():
        return []
    found = [p.name for p in build_dir.iterdir() if VERSION_RE.match(p.name) and (p / "release.json").is_file()]
    return sorted(found, key=version_key)


def next_version(existing: Iterable[str], base: str) -> str:
    """``base`` if nothing is built yet or everything built is older; else the highest + one minor."""
    versions = sorted(existing, key=version_key)
    if not versions or version_key(versions[-1]) < version_key(base):
        return base
    major, minor = version_key(versions[-1])
    return f"{major}.{minor + 1}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def deterministic_tar_gz(members: list[tuple[str, Path]], out: Path) -> None:
    """A ``.tar.gz`` whose bytes depend only on the members' names and contents."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, path in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, 0, "", ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    with out.open("wb") as handle, gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0) as gz:
        gz.write(raw.getvalue())


def gzip_file(src: Path, out: Path) -> None:
    with src.open("rb") as source, out.open("wb") as handle, \
            gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0, compresslevel=6) as gz:
        shutil.copyfileobj(source, gz, 1 << 20)


@dataclass
class Release:
    """One built version (a folder with ``release.json``)."""

    path: Path
    info: dict

    @property
    def version(self) -> str:
        return str(self.info["version"])

    @property
    def graph_path(self) -> Path:
        return self.path / self.info["graph"]

    def manifest_payload(self) -> str:
        return self.graph_path.read_text(encoding="utf-8")


def load_release(build_dir: Path, version: str | None = None) -> Release:
    versions = built_versions(build_dir)
    if not versions:
        raise EdgeAppError(f"{build_dir}: no release built yet; run `edge-app panorama build` first")
    chosen = version or versions[-1]
    if chosen not in versions:
        raise EdgeAppError(f"--version {chosen}: not built under {build_dir} (built: {', '.join(versions)})")
    path = build_dir / chosen
    return Release(path, manifests.read_json(path / "release.json"))


# -- the build ------------------------------------------------------------------------------------------------
class Builder:
    def __init__(self, project: Project, version: str, account: str, stage: Path, *,
                 container_tar: Path | None, model_prefix: Path | None, base_image: str | None,
                 docker: bool | None) -> None:
        self.project = project
        self.version = version
        self.account = account
        self.stage = stage
        self.container_tar = container_tar
        self.model_prefix = model_prefix
        self.base_image = base_image
        self.docker = docker
        self.assets_dir = stage / "assets"
        self.assets_dir.mkdir(parents=True)
        self.packages_info: list[dict] = []
        self.model_info: dict[str, Any] = {}

    def package_dir(self, pkg: PackageSource) -> Path:
        return self.stage / "packages" / f"{self.account}-{pkg.name}-{self.version}"

    def add_asset(self, path: Path, suffix: str) -> dict:
        digest = sha256_file(path)
        target = self.assets_dir / f"{digest}{suffix}"
        os.replace(path, target)
        return {"uri": target.name, "sha256": digest, "bytes": target.stat().st_size}

    def add_descriptor(self, descriptor: dict) -> dict:
        tmp = self.assets_dir / ".descriptor.tmp"
        tmp.write_text(manifests.dumps(descriptor), encoding="utf-8")
        return self.add_asset(tmp, ".json")

    # model ---------------------------------------------------------------------------------------------
    def model_files(self, pkg: PackageSource) -> tuple[Path, Path, Path | None]:
        spec = pkg.spec["model"]
        root = self.project.root
        if self.model_prefix is not None:
            prefix = self.model_prefix
            return Path(f"{prefix}-symbol.json"), Path(f"{prefix}-0000.params"), Path(f"{prefix}.onnx")
        return root / spec["symbol"], root / spec["params"], (root / spec["onnx"]) if spec.get("onnx") else None

    def build_model(self, pkg: PackageSource) -> dict:
        symbol, params, onnx_path = self.model_files(pkg)
        for path in (symbol, params):
            if not path.is_file():
                raise EdgeAppError(
                    f"{path}: not found: the model package needs the MXNet export of the trained detector "
                    f"(<prefix>-symbol.json + <prefix>-0000.params, written by training next to tray_detector.onnx: "
                    f"{pkg.spec['model'].get('produced_by', 'training/export.py')}); train first or pass "
                    f"--model-prefix")
        descriptor = pkg.descriptor["mlModelDescriptor"]
        _check_symbol(symbol, descriptor["inputs"][0]["name"])
        if onnx_path is not None and onnx_path.is_file():
            _check_onnx_size(onnx_path, descriptor["inputs"][0]["shape"])
            from training.export import read_metadata

            self.model_info["onnx_model_version"] = read_metadata(onnx_path).get("model_version", "")
        names = pkg.spec["model"]["archive_names"]
        tmp = self.assets_dir / ".model.tmp"
        deterministic_tar_gz([(names[0], symbol), (names[1], params)], tmp)
        self.model_info.update({"symbol_sha256": sha256_file(symbol), "params_sha256": sha256_file(params),
                                "archive": names})
        return {"type": "model", **self.add_asset(tmp, ".tar.gz")}

    # code ----------------------------------------------------------------------------------------------
    def stage_code_context(self, pkg: PackageSource) -> Path:
        context = self.package_dir(pkg)
        shutil.copytree(pkg.source, context, ignore=IGNORED)
        app_src = context / "edge-app"
        for item in pkg.spec.get("container_files", []):
            src = self.project.root / item
            if src.is_dir():
                shutil.copytree(src, app_src / item, ignore=IGNORED)
            elif src.is_file():
                (app_src / item).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, app_src / item)
            else:
                raise EdgeAppError(f"panorama.json: packages: container_files: {item} not found")
        return context

    def build_code(self, pkg: PackageSource, context: Path) -> dict:
        tmp = self.assets_dir / ".container.tmp"
        if self.container_tar is not None:
            if not self.container_tar.is_file():
                raise EdgeAppError(f"--container-tar: {self.container_tar} not found")
            gzip_file(self.container_tar, tmp)
        else:
            use_docker = self.docker if self.docker is not None else shutil.which("docker") is not None
            if not use_docker:
                raise EdgeAppError(f"{self.project.rel(pkg.source)}: the code asset is a container image: docker is "
                                   f"not available; install docker or pass --container-tar <output of docker export> "
                                   f"(`edge-app panorama validate` checks the project without building)")
            exported = self.assets_dir / ".container.tar"
            _docker_export(context, f"edge-app-panorama-{pkg.name}:{self.version}", exported, self.base_image)
            gzip_file(exported, tmp)
            exported.unlink()
        return {"type": "container", **self.add_asset(tmp, ".tar.gz")}

    # packages and graph ------------------------------------------------------------------------------------
    def build_package(self, pkg: PackageSource) -> None:
        if pkg.kind == "code":
            context = self.stage_code_context(pkg)
            binary = self.build_code(pkg, context)
        else:
            context = self.package_dir(pkg)
            context.mkdir(parents=True)
            shutil.copy2(pkg.source / "descriptor.json", context / "descriptor.json")
            binary = self.build_model(pkg)
        descriptor = self.add_descriptor(pkg.descriptor)
        doc = copy.deepcopy(pkg.package)
        body = doc["nodePackage"]
        body["version"] = self.version
        body["assets"] = [{"name": pkg.asset, "implementations": [
            {"type": binary["type"], "assetUri": binary["uri"], "descriptorUri": descriptor["uri"]}]}]
        label = f"{self.project.rel(pkg.source)}/package.json (built)"
        manifests.validate(doc, "nodePackage", label)
        path = context / "package.json"
        path.write_text(manifests.dumps(doc), encoding="utf-8")
        self.packages_info.append({
            "name": pkg.name, "kind": pkg.kind, "version": self.version, "patch_version": sha256_file(path),
            "package_json": str(path.relative_to(self.stage)),
            "assets": [{"role": binary["type"], **_public(binary)}, {"role": "descriptor", **_public(descriptor)}],
        })

    def substitute(self, document: dict) -> dict:
        """Replace the placeholder account in package names and interfaces; our packages get the version."""
        text = json.dumps(document).replace(f"{self.project.account}::", f"{self.account}::")
        doc = json.loads(text)
        ours = {f"{self.account}::{name}" for name in self.project.packages}
        key = "nodeGraph" if "nodeGraph" in doc else "nodeGraphOverrides"
        for pkg in doc[key].get("packages", []):
            if pkg["name"] in ours:
                pkg["version"] = self.version
        return doc

    def build_graph(self) -> str:
        graph = self.substitute(self.project.graph)
        rel = Path(self.project.app["graph"])
        label = f"{rel} (built)"
        manifests.validate(graph, "nodeGraph", label)
        interfaces = self.project.interfaces(self.account)
        for pkg in self.project.packages.values():
            interfaces.update(interfaces_of(pkg.package, f"{self.account}::{pkg.name}"))
        known = {f"{self.account}::{name}": self.version for name in self.project.packages}
        check_graph(graph, interfaces, label, known)
        payload = manifests.dumps(graph)
        if len(payload) > 51200:
            raise EdgeAppError(f"{label}: {len(payload)} characters; ManifestPayload allows at most 51200")
        out = self.stage / "graphs" / self.project.name / "graph.json"
        out.parent.mkdir(parents=True)
        out.write_text(payload, encoding="utf-8")
        example = self.project.app.get("overrides_example")
        if example:
            overrides = self.substitute(manifests.read_json(self.project.root / example))
            check_overrides(overrides, graph, interfaces, f"{example} (built)")
            target = out.parent / "deployment_overrides" / Path(example).name
            target.parent.mkdir(parents=True)
            target.write_text(manifests.dumps(overrides), encoding="utf-8")
        return str(out.relative_to(self.stage))


def _public(asset: dict) -> dict:
    return {k: asset[k] for k in ("uri", "sha256", "bytes")}


def _check_symbol(symbol: Path, input_name: str) -> None:
    try:
        nodes = json.loads(symbol.read_text(encoding="utf-8"))["nodes"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise EdgeAppError(f"{symbol}: not an MXNet symbol file (expected JSON with 'nodes')") from None
    if not any(n.get("op") == "null" and n.get("name") == input_name for n in nodes):
        raise EdgeAppError(f"{symbol}: the MXNet graph has no input {input_name!r} (the model descriptor's "
                           f"mlModelDescriptor.inputs[0].name)")


def _check_onnx_size(onnx_path: Path, shape: list[int]) -> None:
    from edge_app.detectors.model_file import inspect_model, load_onnx

    spec = inspect_model(load_onnx(onnx_path), onnx_path)
    if [1, 3, spec.input_size[1], spec.input_size[0]] != list(shape):
        raise EdgeAppError(f"{onnx_path}: the exported detector's input is {spec.input_size[0]}x{spec.input_size[1]} "
                           f"but the model descriptor's shape is {shape}")


def _docker_export(context: Path, tag: str, out: Path, base_image: str | None) -> None:
    # Panorama appliances are arm64 (Jetson Xavier); on an x86 host this needs QEMU binfmt (CI sets it up).
    build = ["docker", "build", "--platform", PLATFORM, "-t", tag, str(context)]
    if base_image:
        build[2:2] = ["--build-arg", f"BASE_IMAGE={base_image}"]
    _run(build)
    container = _run(["docker", "create", "--platform", PLATFORM, tag]).strip()
    try:
        _run(["docker", "export", "--output", str(out), container])
    finally:
        subprocess.run(["docker", "rm", container], capture_output=True, check=False)


def _run(cmd: list[str]) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise EdgeAppError(f"{' '.join(cmd[:3])}: failed (exit {result.returncode}): {tail[0][:300]}")
    return result.stdout


def _git_commit(root: Path) -> str:
    result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def build(root: Path | str = ".", *, version: str | None = None, account: str | None = None,
          container_tar: Path | None = None, model_prefix: Path | None = None, base_image: str | None = None,
          docker: bool | None = None, build_dir: Path | None = None) -> Release:
    """Validate the project, then write ``<build dir>/<version>/`` (see the module docstring)."""
    root = Path(root)
    project = load_project(root)
    account = account or os.environ.get("PANORAMA_ACCOUNT_ID") or project.account
    if not ACCOUNT_RE.match(account):
        raise EdgeAppError(f"--account: expected a 12-digit AWS account id, got {account!r}")
    out_dir = build_dir or (root / project.manifest["build"]["dir"])
    existing = built_versions(out_dir)
    if version is None:
        version = next_version(existing, project.app["version"])
    version_key(version)
    target = out_dir / version
    if target.exists():
        raise EdgeAppError(f"{target}: version {version} is already built; versions are immutable: build the next "
                           f"one (omit --version) or choose a new --version")
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".staging-{version}-", dir=out_dir))
    try:
        builder = Builder(project, version, account, stage, container_tar=container_tar, model_prefix=model_prefix,
                          base_image=base_image, docker=docker)
        for pkg in project.packages.values():
            builder.build_package(pkg)
        graph = builder.build_graph()
        info = {
            "application": project.name, "version": version, "account": account,
            "built_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "source_commit": _git_commit(root), "graph": graph, "packages": builder.packages_info,
            "model": builder.model_info,
        }
        (stage / "release.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        try:
            os.rename(stage, target)  # fails if another build created the version meanwhile
        except OSError:
            raise EdgeAppError(f"{target}: version {version} appeared while building; versions are immutable") from None
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return Release(target, info)


def validate(root: Path | str = ".") -> Project:
    """All schema and cross-reference checks, no build."""
    return load_project(Path(root))
