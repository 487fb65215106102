"""The Panorama project as files: ``panorama.json``, the application graph, the node packages.

:func:`load_project` reads and schema-checks every document, then checks what a schema cannot see, the
cross-references between them (each as one `EdgeAppError` line naming the file and the JSON path):

* every node's interface ``<account>::<package>.<interface>`` comes from a package listed in the graph, and
  that package exists in ``packages/`` (or is one of Panorama's built-in ``panorama::`` packages) and
  declares the interface;
* every edge endpoint exists: ``node.port`` names a node, the port is an *output* of the producer and an
  *input* of the consumer, and both sides carry the same type (a parameter node's interface is its type);
* every input of the code node is connected (the SDK's ``inputs.<name>.get()`` would fail on the device);
* every package in the graph exists with the same version, and every package in ``panorama.json`` is used;
* package folders are named ``<account>-<name>-<version>`` after their ``package.json``;
* the code descriptor's entry is the package's ``src/`` entry as the Dockerfile copies it (``/panorama``);
* the model descriptor's input shape is ``[1, 3, S, S]`` with ``S`` the graph's model-input parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_app.errors import EdgeAppError
from edge_app.panorama import manifests

VALUE_TYPES = ("boolean", "float32", "int32", "string")
CAMERA_INTERFACE = "panorama::abstract_rtsp_media_source.rtsp_v1_interface"
HDMI_INTERFACE = "panorama::hdmi_data_sink.hdmi0"


@dataclass(frozen=True)
class Interface:
    """One node interface: its category and typed ports."""

    name: str
    category: str
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    asset: str | None = None


# Panorama's own packages have no package.json in the project; these are the ports the SDK documents.
BUILTIN_INTERFACES: dict[str, Interface] = {
    CAMERA_INTERFACE: Interface(CAMERA_INTERFACE, "media_source", {}, {"video_out": "media"}),
    HDMI_INTERFACE: Interface(HDMI_INTERFACE, "media_sink", {"video_in": "media"}, {}),
}


def interfaces_of(package_doc: dict, full_package: str) -> dict[str, Interface]:
    """``{"<account>::<package>.<interface>": Interface}`` for one ``package.json`` document."""
    result = {}
    for item in package_doc["nodePackage"]["interfaces"]:
        full = f"{full_package}.{item['name']}"
        result[full] = Interface(
            full, item["category"], {p["name"]: p["type"] for p in item.get("inputs", [])},
            {p["name"]: p["type"] for p in item.get("outputs", [])}, item.get("asset"))
    return result


@dataclass
class PackageSource:
    """One package of ``panorama.json`` with its source folder's documents."""

    name: str
    kind: str  # "code" | "model"
    source: Path
    asset: str
    package: dict
    descriptor: dict
    spec: dict
    """The package's entry in ``panorama.json``."""

    @property
    def version(self) -> str:
        return str(self.package["nodePackage"]["version"])


@dataclass
class Project:
    root: Path
    manifest_path: Path
    manifest: dict
    graph_path: Path
    graph: dict
    packages: dict[str, PackageSource] = field(default_factory=dict)

    @property
    def app(self) -> dict:
        return self.manifest["application"]

    @property
    def account(self) -> str:
        return str(self.app["account_placeholder"])

    @property
    def name(self) -> str:
        return str(self.app["name"])

    def rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)

    def interfaces(self, account: str | None = None) -> dict[str, Interface]:
        found = dict(BUILTIN_INTERFACES)
        for pkg in self.packages.values():
            found.update(interfaces_of(pkg.package, f"{account or self.account}::{pkg.name}"))
        return found

    def parameter_value(self, name: str) -> Any:
        for node in self.graph["nodeGraph"]["nodes"]:
            if node["name"] == name and node["interface"] in VALUE_TYPES:
                return node.get("value")
        raise EdgeAppError(f"{self.rel(self.graph_path)}: nodeGraph.nodes: no parameter node {name!r} "
                           f"(panorama.json application.model_input_parameter names it)")


def _nodes_by_name(nodes: list[dict], label: str, where: str = "nodeGraph.nodes") -> dict[str, dict]:
    by_name: dict[str, dict] = {}
    for i, node in enumerate(nodes):
        if node["name"] in by_name:
            raise EdgeAppError(f"{label}: {where}[{i}].name: node {node['name']!r} is defined twice")
        by_name[node["name"]] = node
    return by_name


def _split_port(endpoint: str) -> tuple[str, str | None]:
    node, _, port = endpoint.partition(".")
    return node, (port or None)


def check_graph(graph: dict, interfaces: Mapping[str, Interface], label: str,
                known_packages: Mapping[str, str] | None = None) -> None:
    """Cross-reference checks of one ``nodeGraph`` (see the module docstring); ``known_packages`` maps
    ``<account>::<name>`` to the version found in ``packages/`` (built-in packages are always known)."""
    body = graph["nodeGraph"]
    included: dict[str, str] = {}
    for i, pkg in enumerate(body["packages"]):
        if pkg["name"] in included:
            raise EdgeAppError(f"{label}: nodeGraph.packages[{i}].name: package {pkg['name']!r} is listed twice")
        included[pkg["name"]] = pkg["version"]
        if known_packages is not None and not pkg["name"].startswith("panorama::"):
            if pkg["name"] not in known_packages:
                raise EdgeAppError(f"{label}: nodeGraph.packages[{i}].name: package {pkg['name']!r} does not exist "
                                   f"in packages/ (known: {', '.join(sorted(known_packages)) or 'none'})")
            if known_packages[pkg["name"]] != pkg["version"]:
                raise EdgeAppError(f"{label}: nodeGraph.packages[{i}].version: {pkg['name']} is version "
                                   f"{known_packages[pkg['name']]} in packages/, not {pkg['version']}")
    nodes = _nodes_by_name(body["nodes"], label)
    for i, node in enumerate(body["nodes"]):
        if node["interface"] in VALUE_TYPES:
            continue
        package = node["interface"].split(".")[0]
        if package not in included:
            raise EdgeAppError(f"{label}: nodeGraph.nodes[{i}].interface: {node['interface']!r} comes from package "
                               f"{package!r}, which is not in nodeGraph.packages")
        if node["interface"] not in interfaces:
            raise EdgeAppError(f"{label}: nodeGraph.nodes[{i}].interface: no package declares interface "
                               f"{node['interface']!r}")
    check_edges(body.get("edges", []), nodes, interfaces, label)


def check_edges(edges: list[dict], nodes: Mapping[str, dict], interfaces: Mapping[str, Interface], label: str,
                where: str = "nodeGraph.edges") -> None:
    connected: dict[tuple[str, str], int] = {}
    for i, edge in enumerate(edges):
        cons_node, cons_port = _split_port(edge["consumer"])
        at = f"{label}: {where}[{i}]"
        if cons_node not in nodes:
            raise EdgeAppError(f"{at}.consumer: {edge['consumer']!r}: no node named {cons_node!r}")
        cons_iface = interfaces.get(nodes[cons_node]["interface"])
        if cons_iface is None or cons_port not in cons_iface.inputs:
            have = ", ".join(cons_iface.inputs) if cons_iface else "none (a parameter node has no inputs)"
            raise EdgeAppError(f"{at}.consumer: {edge['consumer']!r}: {cons_node} has no input {cons_port!r} "
                               f"(inputs: {have or 'none'})")
        prod_node, prod_port = _split_port(edge["producer"])
        if prod_node not in nodes:
            raise EdgeAppError(f"{at}.producer: {edge['producer']!r}: no node named {prod_node!r}")
        producer = nodes[prod_node]
        if producer["interface"] in VALUE_TYPES:
            if prod_port is not None:
                raise EdgeAppError(f"{at}.producer: {edge['producer']!r}: {prod_node} is a parameter node; "
                                   f"name it without a port")
            prod_type = producer["interface"]
        else:
            prod_iface = interfaces[producer["interface"]]
            if prod_port is None or prod_port not in prod_iface.outputs:
                raise EdgeAppError(f"{at}.producer: {edge['producer']!r}: {prod_node} has no output {prod_port!r} "
                                   f"(outputs: {', '.join(prod_iface.outputs) or 'none'})")
            prod_type = prod_iface.outputs[prod_port]
        cons_type = cons_iface.inputs[cons_port]
        if prod_type != cons_type:
            raise EdgeAppError(f"{at}: {edge['producer']} ({prod_type}) cannot feed {edge['consumer']} ({cons_type})")
        connected[(cons_node, cons_port)] = connected.get((cons_node, cons_port), 0) + 1
    for name, node in nodes.items():
        iface = interfaces.get(node["interface"])
        if iface is None or iface.category != "business_logic":
            continue
        missing = [p for p in iface.inputs if (name, p) not in connected]
        if missing:
            raise EdgeAppError(f"{label}: {where}: input(s) {', '.join(missing)} of {name} are not connected "
                               f"(the node reads every declared input)")


def check_overrides(overrides: dict, graph: dict, interfaces: Mapping[str, Interface], label: str) -> None:
    """Overrides replace only overridable nodes of the graph, with nodes they define, of a compatible kind.
    Camera packages named in overrides are registered in the account (not in ``packages/``): a node
    replacing a camera is taken to be one."""
    body = overrides["nodeGraphOverrides"]
    graph_nodes = _nodes_by_name(graph["nodeGraph"]["nodes"], label)
    new_nodes = _nodes_by_name(body.get("nodes", []), label, "nodeGraphOverrides.nodes")
    packages = {p["name"] for p in body.get("packages", [])}
    for i, node in enumerate(body.get("nodes", [])):
        if node["interface"] not in VALUE_TYPES and node["interface"].split(".")[0] not in packages:
            raise EdgeAppError(f"{label}: nodeGraphOverrides.nodes[{i}].interface: package of "
                               f"{node['interface']!r} is not in nodeGraphOverrides.packages")
    for i, item in enumerate(body.get("nodeOverrides", [])):
        at = f"{label}: nodeGraphOverrides.nodeOverrides[{i}]"
        target = graph_nodes.get(item["replace"])
        if target is None:
            raise EdgeAppError(f"{at}.replace: the graph has no node {item['replace']!r}")
        if not target.get("overridable", False):
            raise EdgeAppError(f"{at}.replace: node {item['replace']!r} is not overridable in the graph")
        for j, repl in enumerate(item["with"]):
            new = new_nodes.get(repl["name"])
            if new is None:
                raise EdgeAppError(f"{at}.with[{j}].name: {repl['name']!r} is not defined in nodeGraphOverrides.nodes")
            if target["interface"] in VALUE_TYPES or new["interface"] in VALUE_TYPES:
                if new["interface"] != target["interface"]:
                    raise EdgeAppError(f"{at}.with[{j}]: {repl['name']} ({new['interface']}) cannot replace "
                                       f"{item['replace']} ({target['interface']})")
            elif target["interface"] != CAMERA_INTERFACE and new["interface"] != target["interface"]:
                raise EdgeAppError(f"{at}.with[{j}]: {repl['name']} ({new['interface']}) cannot replace "
                                   f"{item['replace']} ({target['interface']})")
            if len(item["with"]) > 1 and target["interface"] != CAMERA_INTERFACE:
                raise EdgeAppError(f"{at}.with: only a camera node can be replaced by several nodes")


def load_project(root: Path | str = ".", manifest: str = "panorama.json") -> Project:
    """Read, schema-check and cross-check the whole project (see module docstring)."""
    root = Path(root)
    manifest_path = root / manifest
    doc = manifests.load(manifest_path, "panoramaProject", manifest)
    graph_path = root / doc["application"]["graph"]
    graph_label = doc["application"]["graph"]
    graph = manifests.load(graph_path, "nodeGraph", graph_label)
    project = Project(root=root, manifest_path=manifest_path, manifest=doc, graph_path=graph_path, graph=graph)
    account = project.account
    for i, spec in enumerate(doc["packages"]):
        project.packages[spec["name"]] = _load_package(project, spec, i)
    known = {f"{account}::{name}": pkg.version for name, pkg in project.packages.items()}
    interfaces = project.interfaces()
    check_graph(graph, interfaces, graph_label, known)
    used = {p["name"] for p in graph["nodeGraph"]["packages"]}
    for i, name in enumerate(project.packages):
        if f"{account}::{name}" not in used:
            raise EdgeAppError(f"{manifest}: packages[{i}]: package {name!r} is not used by {graph_label}")
    _check_roles(project, interfaces)
    overrides = doc["application"].get("overrides_example")
    if overrides:
        check_overrides(manifests.load(root / overrides, "nodeGraphOverrides", overrides), graph, interfaces,
                        overrides)
    return project


def _load_package(project: Project, spec: dict, index: int) -> PackageSource:
    source = project.root / spec["source"]
    label = spec["source"]
    if not source.is_dir():
        raise EdgeAppError(f"{project.manifest_path.name}: packages[{index}].source: folder {label} not found")
    package = manifests.load(source / "package.json", "nodePackage", f"{label}/package.json")
    body = package["nodePackage"]
    expected_dir = f"{project.account}-{body['name']}-{body['version']}"
    if body["name"] != spec["name"]:
        raise EdgeAppError(f"{label}/package.json: nodePackage.name: {body['name']!r} differs from panorama.json's "
                           f"{spec['name']!r}")
    if source.name != expected_dir:
        raise EdgeAppError(f"{label}: package folders are named <account>-<name>-<version>: expected {expected_dir}")
    iface_assets = {i.get("asset") for i in body["interfaces"]}
    if spec["asset"] not in iface_assets:
        raise EdgeAppError(f"{label}/package.json: nodePackage.interfaces: no interface uses asset {spec['asset']!r} "
                           f"(panorama.json names it)")
    descriptor = manifests.read_json(source / "descriptor.json", f"{label}/descriptor.json")
    kind = "runtimeDescriptor" if spec["kind"] == "code" else "mlModelDescriptor"
    manifests.validate(descriptor, kind, f"{label}/descriptor.json")
    pkg = PackageSource(name=spec["name"], kind=spec["kind"], source=source, asset=spec["asset"], package=package,
                        descriptor=descriptor, spec=spec)
    if spec["kind"] == "code":
        _check_code_entry(pkg, label)
    return pkg


def _check_code_entry(pkg: PackageSource, label: str) -> None:
    entry = pkg.descriptor["runtimeDescriptor"]["entry"]
    entry_source = pkg.source / pkg.spec["entry_source"]
    if not entry_source.is_file():
        raise EdgeAppError(f"{label}: entry_source {pkg.spec['entry_source']} not found")
    if not (pkg.source / "Dockerfile").is_file():
        raise EdgeAppError(f"{label}: Dockerfile not found (the code asset is built from it)")
    inside = "/panorama/" + str(Path(pkg.spec["entry_source"]).relative_to("src"))
    if entry["name"] != inside:
        raise EdgeAppError(f"{label}/descriptor.json: runtimeDescriptor.entry.name: expected {inside!r} "
                           f"(the Dockerfile copies src/ to /panorama), got {entry['name']!r}")


def _check_roles(project: Project, interfaces: Mapping[str, Interface]) -> None:
    label = project.rel(project.graph_path)
    nodes = {n["name"]: n for n in project.graph["nodeGraph"]["nodes"]}
    for role, category in (("code_node", "business_logic"), ("model_node", "ml_model")):
        name = project.app[role]
        node = nodes.get(name)
        iface = interfaces.get(node["interface"]) if node else None
        if iface is None or iface.category != category:
            raise EdgeAppError(f"{label}: nodeGraph.nodes: panorama.json's application.{role} {name!r} must be a node "
                               f"with a {category} interface")
    size = project.parameter_value(project.app["model_input_parameter"])
    for pkg in project.packages.values():
        if pkg.kind != "model":
            continue
        shape = pkg.descriptor["mlModelDescriptor"]["inputs"][0]["shape"]
        if shape != [1, 3, size, size]:
            raise EdgeAppError(f"{project.rel(pkg.source)}/descriptor.json: mlModelDescriptor.inputs[0].shape: "
                               f"expected [1, 3, {size}, {size}] (graph parameter "
                               f"{project.app['model_input_parameter']} = {size}), got {shape}")
