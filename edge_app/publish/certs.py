"""Start-up checks of TLS files, so a bad certificate is one clear line, not a TLS handshake mystery.

Checked: each configured file exists and is PEM of the right kind; the client certificate and the CA
certificates are inside their validity period; the private key belongs to the certificate. A TLS
library would only report these as an opaque handshake failure (or, for an expired client certificate,
the broker silently closing the connection) after the app had started.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edge_app.errors import EdgeAppError


def check_tls_files(section: str, *, ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
                    now: datetime | None = None) -> None:
    """Raise `EdgeAppError` ``"<file>: <section>.<field>: <problem>"`` for the first problem found."""
    now = now or datetime.now(UTC)
    if (cert is None) != (key is None):
        raise EdgeAppError(f"{section}: certificate and key must be given together")
    if ca is not None:
        for i, ca_cert in enumerate(_load_certs(ca, f"{section}.ca")):
            _check_validity(ca_cert, ca, f"{section}.ca" + (f"[{i}]" if i else ""), now)
    if cert is not None and key is not None:
        client_cert = _load_certs(cert, f"{section}.cert")[0]
        _check_validity(client_cert, cert, f"{section}.cert", now)
        private_key = _load_key(key, f"{section}.key")
        if _public_der(private_key.public_key()) != _public_der(client_cert.public_key()):
            raise EdgeAppError(f"{key}: {section}.key: private key does not match the certificate {cert}")


def _read(path: Path, field: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise EdgeAppError(f"{path}: {field}: file not found") from None
    except OSError as exc:
        raise EdgeAppError(f"{path}: {field}: cannot read ({exc.strerror})") from None


def _load_certs(path: Path, field: str) -> list[x509.Certificate]:
    data = _read(path, field)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise EdgeAppError(f"{path}: {field}: expected a PEM certificate (-----BEGIN CERTIFICATE-----)")
    return certs


def _load_key(path: Path, field: str) -> object:
    data = _read(path, field)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise EdgeAppError(f"{path}: {field}: expected an unencrypted PEM private key ({exc})") from None


def _check_validity(cert: x509.Certificate, path: Path, field: str, now: datetime) -> None:
    if cert.not_valid_after_utc < now:
        raise EdgeAppError(f"{path}: {field}: certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC "
                           f"(subject {cert.subject.rfc4514_string()})")
    if cert.not_valid_before_utc > now:
        raise EdgeAppError(f"{path}: {field}: certificate not valid before "
                           f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (check the device clock)")


def _public_der(public_key: object) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
