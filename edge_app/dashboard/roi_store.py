"""Save a stream's ROI polygon into the YAML config: validated, backed up, atomic, comments kept.

Why ruamel.yaml and not PyYAML: the config is a hand-written, commented file; a round trip through
PyYAML would drop every comment and reorder nothing less than the whole file. ruamel's round-trip mode
changes only the ``roi`` key of the one stream (written as a flow list of ``[x, y]`` pairs, like the
examples), with the file's own indentation guessed from its text.

Order of operations, so that no failure can leave a broken or half-written config:

1. edit the parsed document in memory and write it to a temporary file next to the config;
2. validate that file with the app's own loader (`edge_app.config.load_config`): a config the app
   would refuse at start-up is never installed;
3. copy the current config to ``<config>.bak-<UTC timestamp>`` (written atomically too);
4. ``os.replace`` the temporary file over the config (after fsync; the folder is fsynced afterwards).
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edge_app.config import AppConfig, load_config
from edge_app.errors import EdgeAppError

_save_lock = threading.Lock()


class UnknownStreamError(EdgeAppError):
    """The stream is not (or no longer) in the config file."""


@dataclass(frozen=True)
class SavedConfig:
    config: AppConfig
    backup: Path


def _yaml():  # noqa: ANN202 - ruamel's YAML type, imported lazily
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines of the user's file
    return yaml


def _number(value: float) -> int | float:
    """Whole pixel values are written as ints (``[100, 80]``, like hand-written configs)."""
    return int(value) if float(value).is_integer() else round(float(value), 2)


def _flow_polygon(points: Sequence[tuple[float, float]]):  # noqa: ANN202 - ruamel CommentedSeq
    from ruamel.yaml.comments import CommentedSeq

    polygon = CommentedSeq()
    for x, y in points:
        pair = CommentedSeq([_number(x), _number(y)])
        pair.fa.set_flow_style()
        polygon.append(pair)
    polygon.fa.set_flow_style()
    return polygon


def read_roi(config_path: Path, stream: str) -> list[tuple[float, float]] | None:
    """The ROI of ``stream`` as written in the file now (the app may run with an older one)."""
    cfg = load_config(config_path, resolve=False)
    for entry in cfg.streams:
        if entry.name == stream:
            return [(float(x), float(y)) for x, y in entry.roi] if entry.roi is not None else None
    raise UnknownStreamError(f"{config_path}: streams: no stream named {stream!r}")


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_roi(config_path: Path, stream: str, points: Sequence[tuple[float, float]],
             now: datetime | None = None) -> SavedConfig:
    """Write ``points`` as the ROI of ``stream`` in ``config_path``; see the module doc for the guarantees.

    Raises `UnknownStreamError` when the stream is not in the file, `EdgeAppError` (one line naming the
    file and key) when the edited config would not load.
    """
    from ruamel.yaml.util import load_yaml_guess_indent

    config_path = Path(config_path)
    with _save_lock:
        original = config_path.read_bytes()
        document, indent, block_seq_indent = load_yaml_guess_indent(original.decode("utf-8"))
        streams = document.get("streams") if hasattr(document, "get") else None
        entry = next((s for s in streams or [] if hasattr(s, "get") and s.get("name") == stream), None)
        if entry is None:
            raise UnknownStreamError(f"{config_path}: streams: no stream named {stream!r}")
        entry["roi"] = _flow_polygon(points)

        yaml = _yaml()
        sequence, offset = indent or 2, block_seq_indent or 0
        # the guessed indent is the sequence's ("  - name:" -> 4 with offset 2); mappings use indent - offset
        yaml.indent(mapping=max(2, sequence - offset) if offset else sequence, sequence=sequence, offset=offset)
        text = io.StringIO()
        yaml.dump(document, text)

        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
        tmp = config_path.with_name(f".{config_path.name}.{os.getpid()}.{stamp}.tmp")
        backup = config_path.with_name(f"{config_path.name}.bak-{stamp}")
        try:
            _fsync_write(tmp, text.getvalue().encode("utf-8"))
            try:
                config = load_config(tmp, resolve=False)
            except EdgeAppError as exc:  # name the real file, not the temporary one
                raise EdgeAppError(str(exc).replace(str(tmp), str(config_path), 1)) from None
            backup_tmp = backup.with_name(f".{backup.name}.tmp")
            _fsync_write(backup_tmp, original)
            shutil.copystat(config_path, backup_tmp)
            os.replace(backup_tmp, backup)
            shutil.copymode(config_path, tmp)
            os.replace(tmp, config_path)
            _fsync_dir(config_path.parent)
        finally:
            tmp.unlink(missing_ok=True)
        return SavedConfig(config, backup)
