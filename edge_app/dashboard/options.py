"""`--dashboard PORT`, `--dashboard-host`, `--dashboard-token` merged with the config's ``dashboard`` section.

Kept free of web imports: `edge-app run` resolves these on every start, with or without a dashboard.

Why loopback by default, and a token required elsewhere: the ROI editor writes the config file, so an
open port on a plant network would let anyone change what is counted. Binding beyond loopback without
a token is refused at start-up rather than warned about in a log nobody reads.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from edge_app.config import AppConfig
from edge_app.errors import EdgeAppError


@dataclass(frozen=True)
class DashboardOptions:
    port: int
    """0 picks a free port (logged at start-up)."""
    host: str
    token: str | None
    frame_fps: float
    config_path: Path
    """The file the ROI editor writes (absolute)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: assume it can be reached from elsewhere
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token (see the module doc for why)."""
    if not is_loopback(host) and not token:
        raise EdgeAppError(f"--dashboard-host {host}: the dashboard would be reachable from the network without "
                           "authentication; set --dashboard-token (or dashboard.token in the config)")


def resolve_options(cfg: AppConfig, config_path: Path, *, port: int | None = None, host: str | None = None,
                    token: str | None = None) -> DashboardOptions | None:
    """Command-line options over the config's ``dashboard`` section; None when no port is set anywhere."""
    section = cfg.dashboard
    port = section.port if port is None else port
    if port is None:
        return None
    if not 0 <= port <= 65535:
        raise EdgeAppError(f"--dashboard: expected a TCP port 0-65535 (got {port})")
    if token is not None and len(token) < 8:
        raise EdgeAppError("--dashboard-token: expected at least 8 characters")
    host = host or section.host
    token = token or section.token
    check_exposure(host, token)
    return DashboardOptions(port, host, token, section.frame_fps, Path(config_path).resolve())
