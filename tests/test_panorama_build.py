"""`edge-app panorama build`: release layout, sha256-named assets, the model archive, account substitution,
version bumping and immutability."""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from panorama_helpers import copy_project, fake_container_tar, tiny_mxnet_export  # noqa: E402

from edge_app.errors import EdgeAppError  # noqa: E402
from edge_app.panorama import manifests  # noqa: E402
from edge_app.panorama.build import build, built_versions, load_release, next_version  # noqa: E402
from edge_app.panorama.project import check_graph, interfaces_of  # noqa: E402

ACCOUNT = "210987654321"


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path]:
    return {"root": copy_project(tmp_path / "project"), "model": tiny_mxnet_export(tmp_path / "model"),
            "container": fake_container_tar(tmp_path / "container.tar"), "out": tmp_path / "build"}


def _build(p: dict[str, Path], **kwargs):  # noqa: ANN202
    kwargs.setdefault("model_prefix", p["model"])
    return build(p["root"], container_tar=p["container"], build_dir=p["out"],
                 account=kwargs.pop("account", ACCOUNT), **kwargs)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_release_layout_assets_and_substitution(project: dict[str, Path]) -> None:
    release = _build(project)
    assert release.version == "1.0" and release.path == project["out"] / "1.0"
    info = json.loads((release.path / "release.json").read_text())
    assert info["account"] == ACCOUNT and info["application"] == "tray-counter"

    # every asset is named by the sha256 of its bytes, and package.json points at them
    for pkg in info["packages"]:
        package_json = release.path / pkg["package_json"]
        assert package_json.parent.name == f"{ACCOUNT}-{pkg['name']}-1.0"
        assert pkg["patch_version"] == sha(package_json)
        doc = manifests.load(package_json, "nodePackage")
        impl = doc["nodePackage"]["assets"][0]["implementations"][0]
        assert impl["type"] == ("container" if pkg["kind"] == "code" else "model")
        assert doc["nodePackage"]["version"] == "1.0"
        for asset in pkg["assets"]:
            path = release.path / "assets" / asset["uri"]
            assert asset["uri"] == f"{sha(path)}{'.json' if asset['role'] == 'descriptor' else '.tar.gz'}"
            assert asset["uri"] in (impl["assetUri"], impl["descriptorUri"])

    # the model archive: exactly the two files the compiler expects, byte for byte
    model_pkg = next(p for p in info["packages"] if p["kind"] == "model")
    archive = release.path / "assets" / model_pkg["assets"][0]["uri"]
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        assert names == ["tray_detector-0000.params", "tray_detector-symbol.json"]
        assert tar.extractfile("tray_detector-0000.params").read() == b"params-v1"
        assert json.loads(tar.extractfile("tray_detector-symbol.json").read())["nodes"][0]["name"] == "data"
    descriptor = release.path / "assets" / model_pkg["assets"][1]["uri"]
    assert json.loads(descriptor.read_text())["mlModelDescriptor"]["inputs"][0]["shape"] == [1, 3, 300, 300]

    # the code asset is the gzipped `docker export` tar
    code_pkg = next(p for p in info["packages"] if p["kind"] == "code")
    container = release.path / "assets" / code_pkg["assets"][0]["uri"]
    assert gzip.decompress(container.read_bytes()) == project["container"].read_bytes()
    context = release.path / Path(code_pkg["package_json"]).parent
    assert (context / "Dockerfile").is_file() and (context / "src" / "app.py").is_file()
    assert (context / "edge-app" / "edge_app" / "counter.py").is_file()
    assert not list(context.rglob("__pycache__")) and not (context / "edge-app/edge_app/panorama/local_sdk").exists()

    # the graph: real account everywhere, our packages at the release version, still cross-consistent
    graph = manifests.load(release.graph_path, "nodeGraph")
    text = release.graph_path.read_text()
    assert "123456789012" not in text and f"{ACCOUNT}::tray_counter_code.interface" in text
    versions = {p["name"]: p["version"] for p in graph["nodeGraph"]["packages"]}
    assert versions[f"{ACCOUNT}::tray_counter_code"] == "1.0" and versions["panorama::hdmi_data_sink"] == "1.0"
    interfaces = {}
    for pkg in info["packages"]:
        interfaces.update(interfaces_of(json.loads((release.path / pkg["package_json"]).read_text()),
                                        f"{ACCOUNT}::{pkg['name']}"))
    from edge_app.panorama.project import BUILTIN_INTERFACES

    check_graph(graph, {**BUILTIN_INTERFACES, **interfaces}, "built graph")
    overrides = release.graph_path.parent / "deployment_overrides" / "override_multiple_cameras.json"
    assert f"{ACCOUNT}::line1_camera" in overrides.read_text()


def test_versions_bump_and_are_immutable(project: dict[str, Path]) -> None:
    first = _build(project)
    second = _build(project)
    assert (first.version, second.version) == ("1.0", "1.1")
    before = sha(second.path / "release.json")
    with pytest.raises(EdgeAppError, match=r"version 1\.1 is already built; versions are immutable"):
        _build(project, version="1.1")
    assert sha(second.path / "release.json") == before  # untouched
    third = _build(project, version="2.0")
    assert next_version(built_versions(project["out"]), "1.0") == "2.1"
    assert load_release(project["out"]).version == third.version == "2.0"
    assert not [p for p in project["out"].iterdir() if p.name.startswith(".staging")]
    with pytest.raises(EdgeAppError, match=r"--version: expected <major>\.<minor>"):
        _build(project, version="v3")


def test_same_inputs_give_the_same_model_asset_and_new_weights_a_new_one(project: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    a = _build(project)
    b = _build(project)
    model_uri = [next(p for p in r.info["packages"] if p["kind"] == "model")["assets"][0]["uri"] for r in (a, b)]
    assert model_uri[0] == model_uri[1]
    project["model"] = tiny_mxnet_export(tmp_path / "model2", payload=b"params-v2")
    c = _build(project)
    assert next(p for p in c.info["packages"] if p["kind"] == "model")["assets"][0]["uri"] != model_uri[0]


def test_missing_training_outputs_are_named(project: dict[str, Path]) -> None:
    with pytest.raises(EdgeAppError, match=r"models/tray_detector-symbol\.json: not found: the model package needs "
                                           r"the MXNet export of the trained detector"):
        build(project["root"], container_tar=project["container"], build_dir=project["out"])
    Path(f"{project['model']}-symbol.json").write_text(json.dumps({"nodes": [{"op": "null", "name": "input"}]}))
    with pytest.raises(EdgeAppError, match=r"the MXNet graph has no input 'data'"):
        _build(project)
    assert built_versions(project["out"]) == []


def test_without_docker_or_container_tar_the_build_says_how(project: dict[str, Path]) -> None:
    with pytest.raises(EdgeAppError, match=r"docker is not available; install docker or pass --container-tar"):
        build(project["root"], model_prefix=project["model"], build_dir=project["out"], docker=False)
    with pytest.raises(EdgeAppError, match=r"--account: expected a 12-digit AWS account id"):
        _build(project, account="12345")


def test_real_gluoncv_export_passes_the_model_checks(project: dict[str, Path]) -> None:
    """The MXNet files that the GluonCV export writes (same as training's) are accepted as they are."""
    from detector_models import exported

    onnx_path = exported("ssd")  # cached under tests/.cache; keeps its -symbol.json / -0000.params
    release = _build(project, model_prefix=onnx_path.with_suffix(""))
    model = next(p for p in release.info["packages"] if p["kind"] == "model")
    assert release.info["model"]["onnx_model_version"].startswith("untrained-ssd_300")
    assert model["assets"][0]["bytes"] > 1_000_000
