"""The bootstrap snippet printed by `sds-agent run`, and `sds-agent fetch --json`."""

import json
import re
import subprocess
import time
from datetime import datetime, timedelta, timezone

from conftest import SPIFFE_ID, Envoy, envoy_bin

FIELDS = {"name", "kind", "spiffe_id", "serial", "not_before", "not_after", "chain_length", "pem"}


def pem_blocks(pem: str) -> list[str]:
    return re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", pem, re.S)


def openssl_x509(pem: str, *args: str) -> str:
    res = subprocess.run(["openssl", "x509", "-noout", *args], input=pem, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def parse_time(s: str) -> datetime:
    t = datetime.fromisoformat(s)
    assert t.tzinfo is not None, f"timestamp without time zone: {s}"
    return t


def openssl_time(s: str) -> datetime:
    return datetime.strptime(s.strip(), "%b %d %H:%M:%S %Y GMT").replace(tzinfo=timezone.utc)


def test_snippet_validates_with_envoy(start_agent, tmp_path):
    agent = start_agent()
    snippet = agent.snippet()
    print(snippet)
    assert "sds-grpc" in snippet
    assert str(agent.socket_path) in snippet
    config = tmp_path / "snippet.yaml"
    config.write_text(snippet)
    res = subprocess.run([str(envoy_bin()), "--mode", "validate", "-c", str(config), "-l", "warning"],
                         capture_output=True, text=True, timeout=120)
    print(res.stdout[-2000:], res.stderr[-2000:])
    assert res.returncode == 0, f"envoy --mode validate rejected the snippet:\n{res.stdout}\n{res.stderr}"
    assert "OK" in res.stdout + res.stderr


def test_snippet_serves_secrets_to_envoy(start_agent, processes, free_port, tmp_path):
    """Run Envoy on the snippet exactly as printed, adding only an SDS consumer via --config-yaml."""
    agent = start_agent()
    config = tmp_path / "snippet.yaml"
    config.write_text(agent.snippet())
    admin_port, listen_port = free_port(), free_port()
    sds = ("{resource_api_version: V3, api_config_source: {api_type: GRPC, transport_api_version: V3, "
           "grpc_services: [{envoy_grpc: {cluster_name: sds-grpc}}]}}")
    overlay = (
        "{node: {id: snippet-test, cluster: snippet-test}, "
        f"admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}}}, "
        "static_resources: {listeners: [{name: tls, "
        f"address: {{socket_address: {{address: 127.0.0.1, port_value: {listen_port}}}}}, "
        "filter_chains: [{filters: [{name: envoy.filters.network.echo, typed_config: "
        "{'@type': type.googleapis.com/envoy.extensions.filters.network.echo.v3.Echo}}], "
        "transport_socket: {name: envoy.transport_sockets.tls, typed_config: "
        "{'@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, "
        "common_tls_context: {tls_certificate_sds_secret_configs: [{name: default, sds_config: " + sds + "}], "
        "validation_context_sds_secret_config: {name: ROOTCA, sds_config: " + sds + "}}}}}]}]}}"
    )
    argv = [envoy_bin(), "-c", config, "--config-yaml", overlay, "--concurrency", "1",
            "--disable-hot-restart", "-l", "info"]
    envoy = processes.add(Envoy("envoy-snippet", argv, tmp_path, admin_port, listen_port))
    envoy.wait_live()  # LIVE only once the listener's SDS secrets arrived
    # Envoy holds the certificate the agent serves (poll: a rotation may be in flight).
    deadline = time.monotonic() + 30
    while True:
        serial = agent.fetch("default")[0][0]["serial"].lstrip("0")
        held = {s.lstrip("0") for s in envoy.cert_serials()}
        if serial in held:
            break
        assert time.monotonic() < deadline, f"Envoy holds {held}, agent serves {serial}"
        time.sleep(0.5)


def test_fetch_json(start_agent, tmp_path):
    agent = start_agent(cert_ttl="20s")
    secrets, raw = agent.fetch()
    assert "PRIVATE KEY" not in raw
    assert isinstance(secrets, list) and len(secrets) == 2, raw
    by_name = {s["name"]: s for s in secrets}
    assert set(by_name) == {"default", "ROOTCA"}, raw
    now = datetime.now(timezone.utc)

    for s in secrets:
        missing = FIELDS - set(s)
        assert not missing, f"{s['name']}: missing fields {missing}"
        blocks = pem_blocks(s["pem"])
        assert blocks, f"{s['name']}: no certificate in pem"
        assert s["chain_length"] == len(blocks), (s["chain_length"], len(blocks))
        assert re.fullmatch(r"[0-9a-f]+", s["serial"]), f"serial not lowercase hex without colons: {s['serial']}"
        first = blocks[0]
        osl_serial = openssl_x509(first, "-serial").strip().split("=", 1)[1]
        assert s["serial"].lstrip("0") == osl_serial.lower().lstrip("0"), (s["serial"], osl_serial)
        nb, na = parse_time(s["not_before"]), parse_time(s["not_after"])
        dates = dict(l.split("=", 1) for l in openssl_x509(first, "-startdate", "-enddate").splitlines())
        assert nb == openssl_time(dates["notBefore"]), (s["not_before"], dates)
        assert na == openssl_time(dates["notAfter"]), (s["not_after"], dates)
        assert nb < now < na, (s["name"], nb, now, na)

    leaf, root = by_name["default"], by_name["ROOTCA"]
    assert leaf["kind"] == "tls_certificate"
    assert leaf["spiffe_id"] == SPIFFE_ID
    assert root["kind"] == "validation_context"
    assert root["spiffe_id"] is None
    # --cert-ttl 20s: the leaf expires within 20 s (plus slack for this test's own latency).
    remaining = parse_time(leaf["not_after"]) - now
    print(f"leaf lifetime={parse_time(leaf['not_after']) - parse_time(leaf['not_before'])} remaining={remaining}")
    assert remaining <= timedelta(seconds=20 + 10), remaining

    text = openssl_x509(pem_blocks(leaf["pem"])[0], "-subject", "-ext", "subjectAltName,extendedKeyUsage")
    print(text)
    assert re.search(r"^subject=\s*$", text, re.M), f"leaf subject is not empty: {text}"
    assert re.search(r"Subject Alternative Name: critical\s*\n\s*URI:" + re.escape(SPIFFE_ID) + r"\s*$", text, re.M), text
    assert "TLS Web Server Authentication" in text and "TLS Web Client Authentication" in text, text

    only_root, raw_root = agent.fetch("ROOTCA")
    assert [s["name"] for s in only_root] == ["ROOTCA"], raw_root
    assert json.loads(raw_root) == only_root
