"""mTLS end to end against a local mosquitto with ``require_certificate true``, plus start-up checks.

The PKI (CA, server and client certificates) is generated in the test. The broker has a TLS listener
that demands a client certificate signed by the CA (what AWS IoT Core does) and a plain loopback listener
for the test's subscriber.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import Broker, free_port
from delivery_helpers import Collector, make_cfg, wait_until
from tls_certs import TestCA

from edge_app.config import AppConfig, load_config
from edge_app.errors import EdgeAppError
from edge_app.events import BinCompleted
from edge_app.publish import EventPublisher


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("pki")
    os.chmod(folder, 0o755)
    ca = TestCA(folder)
    rogue = TestCA(folder / "rogue", "rogue-ca")
    return {"ca": ca, "server": ca.issue("localhost", server=True), "client": ca.issue("edge-device-1"),
            "expired": ca.issue("edge-device-old", days_valid=(-30, -1)), "rogue": rogue.issue("intruder"),
            "folder": folder}


@pytest.fixture
def tls_broker(pki: dict, tmp_path: Path):
    tls_port, plain_port = free_port(), free_port()
    user = "user root\n" if os.geteuid() == 0 else ""  # as root mosquitto drops to a user that cannot read tmp
    conf = tmp_path / "mosquitto-tls.conf"
    data = tmp_path / "mosq-data"
    data.mkdir()
    conf.write_text(  # persistence: the subscriber's session survives the restart in the outage test
        f"{user}per_listener_settings false\nallow_anonymous true\npersistence true\n"
        f"persistence_location {data}/\n"
        f"listener {plain_port} 127.0.0.1\n"
        f"listener {tls_port} 127.0.0.1\ncafile {pki['ca'].path}\ncertfile {pki['server'].cert}\n"
        f"keyfile {pki['server'].key}\nrequire_certificate true\nuse_identity_as_username true\n",
        encoding="utf-8")
    broker = Broker("127.0.0.1", plain_port, conf)
    broker.start()
    broker.tls_port = tls_port  # type: ignore[attr-defined]
    yield broker
    broker.stop()


def _iot_cfg(tmp_path: Path, broker: Broker, pki: dict, client: str = "client", **over: object) -> AppConfig:
    cert = pki[client]
    iot = {"endpoint": "localhost", "port": broker.tls_port, "cert": str(cert.cert), "key": str(cert.key),  # type: ignore[attr-defined]
           "root_ca": str(pki["ca"].path), "client_id": "edge-device-1", **over}
    return make_cfg(tmp_path / "state", broker.host, broker.port, iot_core=iot)


def _bin(k: int) -> BinCompleted:
    return BinCompleted(stream="line-1", line="line-1", bin_id=k, trays=20, start_t=0, end_t=1, global_count=20 * k)


def test_mtls_end_to_end_through_the_outbox(tls_broker: Broker, pki: dict, tmp_path: Path) -> None:
    sub = Collector(tls_broker.host, tls_broker.port, "t/#")
    pub = EventPublisher(_iot_cfg(tmp_path, tls_broker, pki))
    assert type(pub.transport).__name__ == "IotCorePublisher"
    pub.commit([_bin(1), _bin(2)], {"line-1": {"next_bin": 3}})  # queued before the connection exists
    pub.start()
    assert pub.transport.wait_connected(10), pub.stats()  # type: ignore[union-attr]
    pub.commit([_bin(3)], {"line-1": {"next_bin": 4}})
    pub.publish_health({"model_version": "m1"})
    assert wait_until(lambda: len(sub.of_type("bin")) == 3 and sub.of_type("health"), 10)
    assert pub.stop(5)
    assert [p["bin_id"] for p in sub.of_type("bin")] == [1, 2, 3]
    assert sub.of_type("health")[0]["broker"]["transport"] == "iot_core"
    states = [p["state"] for p in sub.of_type("status")]
    assert states[0] == "online" and states[-1] == "offline"
    sub.close()


def test_iot_core_survives_a_broker_outage(tls_broker: Broker, pki: dict, tmp_path: Path) -> None:
    """The CRT reconnects by itself; what was queued or in flight during the outage arrives afterwards."""
    sub = Collector(tls_broker.host, tls_broker.port, "t/+/bin")
    pub = EventPublisher(_iot_cfg(tmp_path, tls_broker, pki))
    pub.start()
    assert pub.transport.wait_connected(10)  # type: ignore[union-attr]
    for k in range(1, 21):
        pub.commit([_bin(k)], {"line-1": {"next_bin": k + 1}})
    assert wait_until(lambda: len(sub.unique_bins()) == 20, 10)
    tls_broker.stop()
    for k in range(21, 41):  # broker down: queued in the outbox
        pub.commit([_bin(k)], {"line-1": {"next_bin": k + 1}})
    tls_broker.start()
    assert wait_until(lambda: len(sub.unique_bins()) == 40, 30), pub.stats()
    assert pub.stop(5)
    assert sorted(p["bin_id"] for p in sub.unique_bins().values()) == list(range(1, 41))
    sub.close()


def test_certificate_from_another_ca_is_rejected_and_nothing_is_lost(tls_broker: Broker, pki: dict,
                                                                      tmp_path: Path) -> None:
    """Proves the broker really enforces mTLS: a well-formed but untrusted client certificate cannot connect."""
    pub = EventPublisher(_iot_cfg(tmp_path, tls_broker, pki, client="rogue"))
    pub.commit([_bin(1)], {})
    pub.start()
    assert not pub.transport.wait_connected(3)  # type: ignore[union-attr]
    assert pub.stats()["broker"]["last_error"]
    assert pub.outbox.depth == 1
    assert pub.stop(0.2) is False


def test_mqtt_tls_section_uses_the_same_mtls_listener(tls_broker: Broker, pki: dict, tmp_path: Path) -> None:
    sub = Collector(tls_broker.host, tls_broker.port, "t/#")
    tls = {"ca_certs": str(pki["ca"].path), "certfile": str(pki["client"].cert), "keyfile": str(pki["client"].key)}
    raw = make_cfg(tmp_path, "localhost", tls_broker.tls_port).model_dump(mode="json")  # type: ignore[attr-defined]
    raw["mqtt"]["tls"] = tls
    cfg = AppConfig.model_validate(raw)
    pub = EventPublisher(cfg)
    pub.start()
    pub.commit([_bin(1)], {})
    assert wait_until(lambda: len(sub.of_type("bin")) == 1, 10)
    pub.stop(5)
    sub.close()


def test_missing_certificate_is_one_line_at_start_up(pki: dict, tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, "127.0.0.1", 1, iot_core={
        "endpoint": "example-ats.iot.eu-west-1.amazonaws.com", "cert": str(tmp_path / "nope.pem"),
        "key": str(pki["client"].key), "root_ca": str(pki["ca"].path), "client_id": "x"})
    with pytest.raises(EdgeAppError) as err:
        EventPublisher(cfg)
    assert str(err.value) == f"{tmp_path / 'nope.pem'}: iot_core.cert: file not found"


def test_expired_certificate_is_one_line_at_start_up(pki: dict, tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, "127.0.0.1", 1, iot_core={
        "endpoint": "localhost", "cert": str(pki["expired"].cert), "key": str(pki["expired"].key),
        "root_ca": str(pki["ca"].path), "client_id": "x"})
    with pytest.raises(EdgeAppError) as err:
        EventPublisher(cfg)
    msg = str(err.value)
    assert "iot_core.cert: certificate expired on" in msg and "\n" not in msg and "edge-device-old" in msg


@pytest.mark.parametrize("problem", ["key_mismatch", "not_pem"])
def test_wrong_certificate_or_key_is_one_line_at_start_up(pki: dict, tmp_path: Path, problem: str) -> None:
    cert, key = pki["client"].cert, pki["expired"].key
    if problem == "not_pem":
        cert = tmp_path / "cert.der"
        cert.write_bytes(b"\x30\x82garbage")
        key = pki["client"].key
    cfg = make_cfg(tmp_path, "127.0.0.1", 1, iot_core={"endpoint": "localhost", "cert": str(cert), "key": str(key),
                                                       "client_id": "x"})
    with pytest.raises(EdgeAppError) as err:
        EventPublisher(cfg)
    expected = "does not match the certificate" if problem == "key_mismatch" else "expected a PEM certificate"
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_iot_core_config_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: {path: m.onnx}\nstreams: [{name: a, uri: a.mp4}]\n"
                    "iot_core: {endpoint: e, cert: c.pem, key: k.pem, clientid: x}\n", encoding="utf-8")
    with pytest.raises(EdgeAppError) as err:
        load_config(path)
    assert "iot_core.client_id" in str(err.value) or "iot_core.clientid" in str(err.value)
    path.write_text("model: {path: m.onnx}\nstreams: [{name: a, uri: a.mp4}]\n"
                    "iot_core: {endpoint: e, cert: c.pem, key: k.pem, client_id: x}\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.iot_core is not None and cfg.iot_core.cert == tmp_path / "c.pem"  # relative to the config file
