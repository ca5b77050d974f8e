"""Node-agent mode: one sds-agent socket serves many workloads, each with its own identity.

Callers are identified by kernel peer credentials of the Unix socket connection (SO_PEERCRED,
mapped by --workload rules), by a JWT they forward (--jwt-keys), or both (--caller-identity).

1. test_node_agent_two_uids_mtls: two real Envoys running as uids 1001 and 1002 (setpriv) on one
   agent socket (--caller-identity peer; B's rule also needs exe=<envoy>) each get their own
   SPIFFE ID (admin /certs) and do mTLS with each other, each side checking the other's SAN; a
   cluster expecting another SAN fails; the presented leaves chain to ROOTCA (s_client + openssl
   verify); each identity rotates (10 s TTL) and the new certificate reaches only its own Envoy;
   a uid-1002 caller that is not Envoy is refused.
2. test_node_agent_envoy_google_grpc_token: Envoy with google_grpc SDS + file_based_metadata
   (istio_sds_credentials_header-bin) and Envoy with envoy_grpc + initial_metadata
   `authorization: Bearer`, same uid, get the identities their tokens name and do mTLS.
   test_node_agent_token_header_forms: the three headers a token can travel in; the caller's
   SPIFFE ID and the trust domain name serve the same content as default and ROOTCA.
   test_node_agent_yaml_config: the settings as --config YAML keys; first matching rule wins;
   peer-or-token prefers a token and does not fall back to the peer rule for a forged one.
3. Refusals, each with the gRPC status, an informative message, no key material before the error
   and a `refused` log line: unmapped peers (root and an unprivileged uid), forged/expired/
   wrong-audience/missing tokens, peer-and-token naming different identities, a request (first or
   mid-stream) for another identity's name, and --caller-stream-rate.
4. --ca istio against `sds-agent ca serve`: token-identified callers are certified with their own
   token (forged ones refused, even for an identity already issued); peer-identified callers
   through ImpersonatedIdentity, accepted only from a --trusted-node-identity.

Callers with other uids are run as `python <this file> --probe JSON`: the interpreter starts as
root (it lives under /root, which other uids cannot traverse), imports what it needs, then drops
to the requested uid/gid before connecting, so SO_PEERCRED carries that uid/gid. Needs root.

Run: SDS_AGENT_BIN=.build/debug/sds-agent .venv/bin/python -m pytest Tests/e2e/test_node_agent.py -q -s
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import SPIFFE_ID, Envoy, _start_agent, agent_bin, envoy_bin, service_account_sub, wait_envoys_hold
from daemon_support import SdsStream, sds_request, secrets_of

TRUST_DOMAIN = "spiffe://cluster.local"
ID_A = "spiffe://cluster.local/ns/web/sa/frontend"
ID_B = "spiffe://cluster.local/ns/api/sa/backend"
ID_T = "spiffe://cluster.local/ns/tok/sa/token-client"
ID_NODE = "spiffe://cluster.local/ns/istio-system/sa/ztunnel"  # the agent's own token in --ca istio
WRONG_ID = "spiffe://cluster.local/ns/nobody/sa/nobody"
UID_A, UID_B, UID_X = 1001, 1002, 1003  # UID_X is mapped nowhere

PROBE_TIMEOUT = 10.0  # a served or refused caller hears back well within this

ISTIO_BIN_HEADER = "istio_sds_credentials_header-bin"
ISTIO_11_BIN_HEADER = "istio_sds_credentail_header-bin"  # Istio 1.1's spelling


# --------------------------------------------------------------------------- fixtures, agent


_has_node_agent: list[bool] = []


def require_node_agent() -> None:
    if os.geteuid() != 0:
        pytest.fail("the node-agent tests run Envoys and clients as other uids: run them as root")
    if not _has_node_agent:
        res = subprocess.run([str(agent_bin()), "run", "--help"], capture_output=True, text=True, timeout=30)
        _has_node_agent.append("--caller-identity" in res.stdout + res.stderr)
    if not _has_node_agent[0]:
        pytest.fail(f"{agent_bin()} has no `run --caller-identity` flag yet (node-agent mode not built)")


@pytest.fixture(scope="session")
def open_dirs():
    """Factory: a fresh short /tmp directory with mode 0755, so that unprivileged uids can reach
    the agent socket and read Envoy configs in it. Removed when the interpreter exits (after
    every process was stopped and the log tails of failures were attached to the report)."""

    def make(prefix: str = "sdsn-") -> Path:
        d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        d.chmod(0o755)
        atexit.register(shutil.rmtree, d, ignore_errors=True)
        return d

    return make


@pytest.fixture
def node_agent(processes, open_dirs):
    """Factory: node_agent(mode, workloads=(), extra=(), identity=SPIFFE_ID, ttl="10m") -> a
    serving Agent whose socket (mode 0666) any uid can use. mode None: no --caller-identity."""
    count = [0]

    def start(mode: str | None, workloads=(), extra=(), identity: str | None = SPIFFE_ID, ttl: str = "10m"):
        require_node_agent()
        count[0] += 1
        args = ["--socket-mode", "0666"]
        if mode is not None:
            args += ["--caller-identity", mode]
        for w in workloads:
            args += ["--workload", w]
        return _start_agent(processes, open_dirs(), ttl, [*args, *map(str, extra)], name=f"sds-agent-{count[0]}",
                            identity=identity)

    return start


def log_mark(agent) -> tuple[int, int]:
    return len(agent.log_lines()), len(agent.stdout_lines())


def log_since(agent, mark: tuple[int, int]) -> list[str]:
    return agent.log_lines()[mark[0]:] + agent.stdout_lines()[mark[1]:]


def wait_refusal_logged(agent, mark, *needles: str, timeout: float = 5.0) -> str:
    """The first log line (stderr or stdout) after `mark` with the word `refused` and every needle
    (case-insensitive)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in log_since(agent, mark):
            low = line.lower()
            if "refused" in low and all(n.lower() in low for n in needles):
                return line
        if time.monotonic() >= deadline:
            got = "\n".join(log_since(agent, mark)[-30:]) or "(nothing)"
            raise AssertionError(f"{agent.name}: no log line with 'refused' and {needles} within {timeout:.0f}s; "
                                 f"logged since the mark:\n{got}")
        time.sleep(0.1)


# --------------------------------------------------------------------------- SDS probe (any uid)


def _describe(resp) -> dict:
    from cryptography import x509

    from daemon_support import inline_pem, secrets_of

    out = {}
    for name, s in secrets_of(resp).items():
        kind = s.WhichOneof("type")
        item = {"kind": kind}
        if kind == "tls_certificate":
            chain = inline_pem(s.tls_certificate.certificate_chain)
            leaf = x509.load_pem_x509_certificate(chain.encode())
            try:
                san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                uris = san.get_values_for_type(x509.UniformResourceIdentifier)
            except x509.ExtensionNotFound:
                uris = []
            item.update(chain=chain, key=inline_pem(s.tls_certificate.private_key), uris=uris,
                        serial=format(leaf.serial_number, "x"))
        elif kind == "validation_context":
            item["roots"] = validation_roots(s.validation_context)
        out[name] = item
    return out


def validation_roots(context) -> str:
    """The roots of a validation context: its trusted_ca, or the bundles of Envoy's SPIFFE
    validator configuration (decoded with xds-protos, independently of the agent's code)."""
    from daemon_support import inline_pem

    if not context.HasField("custom_validator_config"):
        return inline_pem(context.trusted_ca)
    from envoy.extensions.transport_sockets.tls.v3 import tls_spiffe_validator_config_pb2

    assert context.custom_validator_config.name == "envoy.tls.cert_validator.spiffe", context.custom_validator_config
    config = tls_spiffe_validator_config_pb2.SPIFFECertValidatorConfig()
    assert context.custom_validator_config.typed_config.Unpack(config)
    # The validator reads revocation lists from the same inline PEM (`X509 CRL` blocks, README
    # "Revocation"); they are not roots.
    return "".join(certificate_blocks(inline_pem(d.trust_bundle)) for d in config.trust_domains)


def certificate_blocks(pem: str) -> str:
    """The CERTIFICATE blocks of a PEM text, in order."""
    import re

    return "".join(re.findall(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", pem, re.S))


def _probe(socket_path: str, names, metadata, timeout: float) -> dict:
    """One StreamSecrets call: send one request, read until every requested name arrived, the
    stream ended (status) or `timeout` passed (DEADLINE_EXCEEDED). The final status is None when
    the names arrived (the call is then cancelled by us)."""
    import queue

    import grpc

    from daemon_support import sds_request, sds_stub

    md = [(k, v.encode() if k.endswith("-bin") and isinstance(v, str) else v) for k, v in metadata]
    channel, stub = sds_stub(Path(socket_path))
    requests: queue.Queue = queue.Queue()
    requests.put(sds_request(list(names), node_id=f"probe-uid-{os.getuid()}"))

    def request_iter():
        while (r := requests.get()) is not None:
            yield r

    out = {"uid": os.getuid(), "gid": os.getgid(), "responses": [], "code": None, "details": None}
    call = stub.StreamSecrets(request_iter(), metadata=md or None, timeout=timeout)
    seen: set = set()
    try:
        for resp in call:
            secrets = _describe(resp)
            out["responses"].append({"version": resp.version_info, "secrets": secrets})
            seen |= set(secrets)
            if seen >= set(names):
                break
        else:
            out["code"] = "OK"  # the server closed the stream without an error
    except grpc.RpcError as e:
        out["code"] = e.code().name
        out["details"] = e.details()
    finally:
        requests.put(None)
        call.cancel()
        channel.close()
    return out


def probe(socket_path, names=("default", "ROOTCA"), metadata=(), uid: int | None = None, gid: int | None = None,
          timeout: float = PROBE_TIMEOUT) -> dict:
    """_probe in this process (uid None: the test's own uid, root) or in a child that drops to
    uid/gid (no supplementary groups) before connecting. `metadata`: (key, str) pairs; values of
    `-bin` keys are sent as their UTF-8 bytes."""
    names, metadata = list(names), [list(m) for m in metadata]
    if uid is None:
        return _probe(str(socket_path), names, metadata, timeout)
    args = json.dumps({"socket": str(socket_path), "names": names, "metadata": metadata, "timeout": timeout,
                       "uid": uid, "gid": uid if gid is None else gid})
    res = subprocess.run([sys.executable, __file__, "--probe", args], capture_output=True, text=True,
                         timeout=timeout + 60, cwd=Path(__file__).parent)
    assert res.returncode == 0, f"probe as uid {uid} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert (out["uid"], out["gid"]) == (uid, uid if gid is None else gid), out
    return out


def _probe_main(args: dict) -> None:
    # Everything _probe imports is loaded while still root: the interpreter's tree is root-only.
    import queue  # noqa: F401

    import grpc  # noqa: F401
    from cryptography import x509  # noqa: F401
    from envoy.config.core.v3 import base_pb2  # noqa: F401
    from envoy.extensions.transport_sockets.tls.v3 import secret_pb2  # noqa: F401
    from envoy.service.discovery.v3 import discovery_pb2  # noqa: F401
    from envoy.service.secret.v3 import sds_pb2_grpc  # noqa: F401

    import daemon_support  # noqa: F401

    os.setgroups([])
    os.setgid(args["gid"])
    os.setuid(args["uid"])
    print(json.dumps(_probe(args["socket"], args["names"], args["metadata"], args["timeout"])), flush=True)


def brief(result: dict) -> str:
    """A probe result without key material, for messages."""
    return json.dumps({"uid": result["uid"], "gid": result["gid"], "code": result["code"],
                       "details": result["details"],
                       "responses": [{n: {k: v for k, v in s.items() if k in ("kind", "uris", "serial")}
                                      for n, s in r["secrets"].items()} for r in result["responses"]]})


def served(result: dict) -> dict:
    """Secrets by name from a probe that must have been served (the union of its responses)."""
    assert result["responses"] and result["code"] is None, f"caller was not served: {brief(result)}"
    out = {}
    for r in result["responses"]:
        out.update(r["secrets"])
    return out


def assert_serves(result: dict, spiffe_id: str) -> dict:
    secrets = served(result)
    assert secrets["default"]["uris"] == [spiffe_id], f"default names {secrets['default']['uris']}, want {spiffe_id}"
    assert secrets["ROOTCA"].get("roots"), f"no ROOTCA bundle: {brief(result)}"
    return secrets


def assert_refused(result: dict, code: str, *patterns: str) -> str:
    """No key material arrived, the stream ended with `code`, and the message matches every regex."""
    assert not result["responses"], f"a refused caller received {len(result['responses'])} response(s): {brief(result)}"
    assert result["code"] == code, f"stream ended with {result['code']} ({result['details']!r}), want {code}"
    details = result["details"] or ""
    for p in patterns:
        assert re.search(p, details, re.I), f"{code} message {details!r} does not match /{p}/"
    return details


# --------------------------------------------------------------------------- Envoy configs


def sds_envoy_grpc(initial_metadata: dict | None = None) -> dict:
    """SDS over Envoy's own gRPC client to cluster `sds-grpc`; `initial_metadata` is sent on every
    stream (e.g. an `authorization` header)."""
    service = {"envoy_grpc": {"cluster_name": "sds-grpc"}}
    if initial_metadata:
        service["initial_metadata"] = [{"key": k, "value": v} for k, v in initial_metadata.items()]
    return {"resource_api_version": "V3",
            "api_config_source": {"api_type": "GRPC", "transport_api_version": "V3", "grpc_services": [service]}}


def sds_google_grpc(socket_path, token_file, header_key: str = ISTIO_BIN_HEADER) -> dict:
    """Istio's old node-agent SDS config: google_grpc to a unix: target, local channel credentials,
    and the token file's bytes sent as `header_key` by the file_based_metadata plugin."""
    return {"resource_api_version": "V3",
            "api_config_source": {
                "api_type": "GRPC", "transport_api_version": "V3",
                "grpc_services": [{"google_grpc": {
                    "target_uri": f"unix:{socket_path}",
                    "stat_prefix": "sdsstat",
                    "channel_credentials": {"local_credentials": {}},
                    "call_credentials": [{"from_plugin": {
                        "name": "envoy.grpc_credentials.file_based_metadata",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.config.grpc_credential.v3.FileBasedMetadataConfig",
                            "secret_data": {"filename": str(token_file)},
                            "header_key": header_key}}}],
                    "credentials_factory_name": "envoy.grpc_credentials.file_based_metadata"}}]}}


def _tls_context(sds: dict, san: str | None) -> dict:
    validation = {}
    if san is not None:
        validation["match_typed_subject_alt_names"] = [{"san_type": "URI", "matcher": {"exact": san}}]
    return {"tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": sds}],
            "combined_validation_context": {"default_validation_context": validation,
                                            "validation_context_sds_secret_config": {"name": "ROOTCA",
                                                                                     "sds_config": sds}}}


def _hcm(stat_prefix: str, route_config: dict) -> dict:
    return {"name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                         ".HttpConnectionManager",
                "stat_prefix": stat_prefix,
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                "route_config": route_config}}


def _upstream(name: str, port: int, sds: dict, san: str) -> dict:
    return {"name": name, "type": "STATIC", "connect_timeout": "2s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "common_tls_context": _tls_context(sds, san)}}}


def mesh_node_config(name: str, *, admin_port: int, plain_port: int, tls_port: int, peer_port: int, peer_id: str,
                     sds: dict, sds_socket=None) -> dict:
    """An Envoy with
    - a plain HTTP listener: `/` goes to cluster `peer` (mTLS to 127.0.0.1:peer_port, whose
      certificate must name peer_id), `/wrong-san` to `peer_wrong_san` (same endpoint, expects
      WRONG_ID: must fail);
    - an mTLS listener requiring a client certificate from ROOTCA (any SAN), answering directly with
      `x-peer: %DOWNSTREAM_PEER_URI_SAN%` and `x-served-by: <name>`.
    `default` and `ROOTCA` come over `sds`; with envoy_grpc, cluster `sds-grpc` is the agent's
    socket `sds_socket`."""
    clusters = [_upstream("peer", peer_port, sds, peer_id), _upstream("peer_wrong_san", peer_port, sds, WRONG_ID)]
    if sds_socket is not None:
        clusters.append({
            "name": "sds-grpc", "type": "STATIC", "connect_timeout": "1s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
            "load_assignment": {"cluster_name": "sds-grpc", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"pipe": {"path": str(sds_socket)}}}}]}]}})
    plain_routes = {"virtual_hosts": [{"name": "plain", "domains": ["*"], "routes": [
        {"match": {"prefix": "/wrong-san"}, "route": {"cluster": "peer_wrong_san"}},
        {"match": {"prefix": "/"}, "route": {"cluster": "peer"}}]}]}
    tls_routes = {"virtual_hosts": [{
        "name": "mtls", "domains": ["*"],
        "routes": [{"match": {"prefix": "/"},
                    "direct_response": {"status": 200, "body": {"inline_string": f"hello from {name}\n"}}}],
        "response_headers_to_add": [{"header": {"key": "x-peer", "value": "%DOWNSTREAM_PEER_URI_SAN%"}},
                                    {"header": {"key": "x-served-by", "value": name}}]}]}
    return {
        "node": {"id": name, "cluster": name},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [
                {"name": "plain", "address": {"socket_address": {"address": "127.0.0.1", "port_value": plain_port}},
                 "filter_chains": [{"filters": [_hcm(f"{name}_plain", plain_routes)]}]},
                {"name": "mtls", "address": {"socket_address": {"address": "127.0.0.1", "port_value": tls_port}},
                 "filter_chains": [{
                     "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                         "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                         "require_client_certificate": True,
                         "common_tls_context": _tls_context(sds, None)}},
                     "filters": [_hcm(f"{name}_mtls", tls_routes)]}]}],
            "clusters": clusters}}


class MeshNode:
    def __init__(self, name: str, free_port):
        self.name = name
        self.admin_port, self.plain_port, self.tls_port = free_port(), free_port(), free_port()
        self.envoy: Envoy | None = None


def start_envoy_as(processes, directory: Path, name: str, config: dict, admin_port: int, listen_port: int,
                   uid: int | None = None) -> Envoy:
    """Envoy with `config` (written as JSON, which is YAML), as `uid` (setpriv, no groups) or as
    the test's uid; waits until LIVE (Envoy goes LIVE once its static SDS secrets arrived)."""
    path = directory / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=1))
    path.chmod(0o644)
    prefix = [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    argv = [*prefix, envoy_bin(), "-c", path, "--concurrency", "1", "--disable-hot-restart", "-l", "info"]
    envoy = processes.add(Envoy(name, argv, directory, admin_port, listen_port))
    t0 = time.monotonic()
    envoy.wait_live()
    as_uid = os.getuid() if uid is None else uid
    print(f"{name}: LIVE after {time.monotonic() - t0:.2f}s (pid {envoy.pid}, uid {as_uid})")
    return envoy


def wait_holds(envoy: Envoy, spiffe_id: str, timeout: float = 15.0) -> list:
    """Wait until every leaf Envoy holds names exactly `spiffe_id`; their serials."""
    def accept(_, leaves):
        uris = set().union(*(u for _, u in leaves))
        return uris == {spiffe_id} and [serial for serial, _ in leaves]

    (serials,) = wait_envoys_hold([envoy], None, timeout, accept=accept)
    return serials


def wait_rotated(envoy: Envoy, spiffe_id: str, before: list, timeout: float) -> list:
    """Wait until Envoy holds a leaf whose serial is not in `before`, every leaf still naming
    exactly `spiffe_id`; the serials then."""
    def accept(_, leaves):
        uris, serials = set().union(*(u for _, u in leaves)), [serial for serial, _ in leaves]
        assert uris == {spiffe_id}, f"{envoy.name} holds URI SANs {uris} (serials {serials}), want only {spiffe_id}"
        return bool(set(serials) - set(before)) and serials

    (serials,) = wait_envoys_hold([envoy], None, timeout, accept=accept)
    return serials


def http_get(port: int, path: str = "/") -> tuple[int, dict, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def stat_value(envoy: Envoy, name: str) -> int:
    for line in envoy.admin(f"/stats?filter=^{re.escape(name)}$").splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def split_pem(pem: str) -> list[str]:
    marker = "-----END CERTIFICATE-----"
    return [b.strip() + "\n" + marker + "\n" for b in pem.split(marker) if "-----BEGIN CERTIFICATE-----" in b]


def presented_chain(port: int, client: dict, roots_pem: str, directory: Path) -> list[str]:
    """The certificate chain an mTLS listener presents, fetched with `openssl s_client` using a
    client certificate `client` (a `default` secret) and verified against `roots_pem`."""
    (directory / "client.pem").write_text(client["chain"])
    (directory / "client.key").write_text(client["key"])
    (directory / "roots.pem").write_text(roots_pem)
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts", "-verify_return_error",
            "-CAfile", directory / "roots.pem", "-cert", directory / "client.pem", "-key", directory / "client.key"]
    res = subprocess.run([str(a) for a in argv], input="", capture_output=True, text=True, timeout=20)
    assert res.returncode == 0, \
        f"openssl s_client to :{port} failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr}"
    assert "Verify return code: 0 (ok)" in res.stdout, res.stdout[-2000:]
    chain = split_pem(res.stdout)
    assert chain, f"s_client printed no certificate:\n{res.stdout[-2000:]}"
    return chain


def openssl_verify(chain: list[str], roots_pem: str, directory: Path) -> str:
    (directory / "leaf.pem").write_text(chain[0])
    (directory / "untrusted.pem").write_text("".join(chain[1:]))
    (directory / "roots.pem").write_text(roots_pem)
    argv = ["openssl", "verify", "-CAfile", directory / "roots.pem", "-purpose", "sslserver"]
    if len(chain) > 1:
        argv += ["-untrusted", directory / "untrusted.pem"]
    res = subprocess.run([str(a) for a in [*argv, directory / "leaf.pem"]], capture_output=True, text=True)
    assert res.returncode == 0, f"openssl verify failed:\n{res.stdout}{res.stderr}"
    return res.stdout.strip()


def ders(pem: str) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return [x509.load_pem_x509_certificate(b.encode()).public_bytes(serialization.Encoding.DER)
            for b in split_pem(pem)]


def cert_info(pem: str) -> tuple[str, list]:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pem.encode())
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)
    return format(cert.serial_number, "x"), uris


# --------------------------------------------------------------------------- 1: two uids, mTLS


ROTATION_TTL = 10  # seconds: renewal at 40-60% of it, so each identity rotates within the test


def test_node_agent_two_uids_mtls(node_agent, processes, open_dirs, free_port):
    envoy_path = os.path.realpath(envoy_bin())
    agent = node_agent("peer", workloads=[f"uid={UID_A},spiffe-id={ID_A}",
                                          f"uid={UID_B},exe={envoy_path},spiffe-id={ID_B}"],
                       ttl=f"{ROTATION_TTL}s")
    d = open_dirs("sdsn-envoy-")
    a, b = MeshNode("envoy-a", free_port), MeshNode("envoy-b", free_port)
    for node, peer, peer_id, uid in ((a, b, ID_B, UID_A), (b, a, ID_A, UID_B)):
        config = mesh_node_config(node.name, admin_port=node.admin_port, plain_port=node.plain_port,
                                  tls_port=node.tls_port, peer_port=peer.tls_port, peer_id=peer_id,
                                  sds=sds_envoy_grpc(), sds_socket=agent.socket_path)
        node.envoy = start_envoy_as(processes, d, node.name, config, node.admin_port, node.plain_port, uid=uid)
    serials = {a.name: wait_holds(a.envoy, ID_A), b.name: wait_holds(b.envoy, ID_B)}
    print(f"/certs: {a.name} (uid {UID_A}) holds {ID_A} serial(s) {serials[a.name]}; "
          f"{b.name} (uid {UID_B}) holds {ID_B} serial(s) {serials[b.name]}")

    def mtls_both_ways(when: str) -> None:
        """The server saw the caller's SPIFFE ID; the caller checked the server's (SAN matcher)."""
        for node, peer, caller_id in ((a, b, ID_A), (b, a, ID_B)):
            status, headers, body = http_get(node.plain_port, "/")
            print(f"{when}: GET {node.name}:/ -> {status} x-served-by={headers.get('x-served-by')} "
                  f"x-peer={headers.get('x-peer')}")
            assert status == 200, f"{node.name} -> {peer.name}: {status} {body!r}"
            assert headers.get("x-served-by") == peer.name, headers
            assert headers.get("x-peer") == caller_id, f"{peer.name} saw the caller as {headers.get('x-peer')!r}"

    mtls_both_ways("first certificates")
    # The SAN check of the upstream clusters is real: expecting another identity fails the handshake.
    for node in (a, b):
        status, _, body = http_get(node.plain_port, "/wrong-san")
        failed = stat_value(node.envoy, "cluster.peer_wrong_san.ssl.fail_verify_san")
        print(f"GET {node.name}:/wrong-san -> {status}; cluster.peer_wrong_san.ssl.fail_verify_san={failed}")
        assert status == 503, f"{node.name} reached its peer while expecting {WRONG_ID}: {status} {body!r}"
        assert failed >= 1
        assert stat_value(node.envoy, "cluster.peer.ssl.fail_verify_san") == 0

    # The leaves the Envoys present chain to the ROOTCA bundle. A client certificate for s_client:
    # a uid-1001 caller (the uid-only rule) gets ID_A.
    secrets = assert_serves(probe(agent.socket_path, uid=UID_A), ID_A)
    roots = secrets["ROOTCA"]["roots"]
    for node, want in ((a, ID_A), (b, ID_B)):
        held_before = node.envoy.cert_serials()
        chain = presented_chain(node.tls_port, secrets["default"], roots, d)
        serial, uris = cert_info(chain[0])
        verdict = openssl_verify(chain, roots, d)
        print(f"{node.name} presents serial {serial} {uris}: openssl verify: {verdict}")
        assert uris == [want]
        held = held_before | node.envoy.cert_serials()  # a rotation may fall in between
        assert serial.lstrip("0") in held, f"{node.name} presents {serial}, /certs shows {held}"

    # Each identity rotates on its own and the new certificate reaches only its own Envoy.
    t0 = time.monotonic()
    for node, want in ((a, ID_A), (b, ID_B)):
        rotated = wait_rotated(node.envoy, want, serials[node.name], timeout=2 * ROTATION_TTL)
        print(f"{node.name}: rotated to {sorted(set(rotated) - set(serials[node.name]))} "
              f"{time.monotonic() - t0:.1f}s into the wait, still only {want}")
    mtls_both_ways("after rotation")

    # The exe= selector is part of the rule: a uid-1002 caller that is not Envoy is nobody.
    mark = log_mark(agent)
    result = probe(agent.socket_path, uid=UID_B)
    details = assert_refused(result, "PERMISSION_DENIED", rf"\buid={UID_B}\b", rf"\bgid={UID_B}\b")
    print(f"uid {UID_B} running python (rule wants exe={envoy_path}): PERMISSION_DENIED {details!r}")
    print(f"log: {wait_refusal_logged(agent, mark, f'uid={UID_B}')}")
    for node in (a, b):
        assert node.envoy.alive()


# --------------------------------------------------------------------------- 2: tokens


ID_U = "spiffe://cluster.local/ns/tok/sa/metadata-client"


def test_node_agent_envoy_google_grpc_token(node_agent, processes, open_dirs, free_port, jwt_keys):
    """Envoy T: google_grpc SDS whose file_based_metadata plugin sends the token file's bytes as
    istio_sds_credentials_header-bin (Istio's old node-agent setup). Envoy U: envoy_grpc SDS with
    `authorization: Bearer` in initial_metadata. Both run as the same uid, so only the tokens
    tell them apart; they do mTLS with each other."""
    agent = node_agent("token", extra=["--jwt-keys", jwt_keys.jwks_path])
    d = open_dirs("sdsn-envoy-")
    token_t = jwt_keys.write_token(d / "istio-token", sub=service_account_sub(ID_T))
    token_t.chmod(0o644)
    token_u = jwt_keys.mint(sub=service_account_sub(ID_U), alg="RS256")
    t, u = MeshNode("envoy-t", free_port), MeshNode("envoy-u", free_port)
    sds = {t.name: (sds_google_grpc(agent.socket_path, token_t), None),
           u.name: (sds_envoy_grpc({"authorization": f"Bearer {token_u}"}), agent.socket_path)}
    for node, peer, peer_id in ((t, u, ID_U), (u, t, ID_T)):
        config = mesh_node_config(node.name, admin_port=node.admin_port, plain_port=node.plain_port,
                                  tls_port=node.tls_port, peer_port=peer.tls_port, peer_id=peer_id,
                                  sds=sds[node.name][0], sds_socket=sds[node.name][1])
        node.envoy = start_envoy_as(processes, d, node.name, config, node.admin_port, node.plain_port, uid=UID_X)
    for node, want, how in ((t, ID_T, f"google_grpc + {ISTIO_BIN_HEADER} from {token_t.name}"),
                            (u, ID_U, "envoy_grpc + initial_metadata authorization: Bearer")):
        print(f"{node.name} ({how}, uid {UID_X}) holds {want} serial(s) {sorted(set(wait_holds(node.envoy, want)))}")
    for node, peer, caller_id in ((t, u, ID_T), (u, t, ID_U)):
        status, headers, body = http_get(node.plain_port, "/")
        print(f"GET {node.name}:/ -> {status} x-served-by={headers.get('x-served-by')} x-peer={headers.get('x-peer')}")
        assert status == 200, f"{node.name} -> {peer.name}: {status} {body!r}"
        assert headers.get("x-served-by") == peer.name, headers
        assert headers.get("x-peer") == caller_id, headers
    log = "\n".join(agent.log_lines() + agent.stdout_lines())
    assert token_t.read_text() not in log and token_u not in log, "a forwarded token appears in the agent's log"


TOKEN_FORMS = {
    "authorization-bearer": lambda t: [("authorization", f"Bearer {t}")],
    ISTIO_BIN_HEADER: lambda t: [(ISTIO_BIN_HEADER, t)],
    ISTIO_11_BIN_HEADER: lambda t: [(ISTIO_11_BIN_HEADER, t)],
}


def test_node_agent_token_header_forms(node_agent, jwt_keys):
    """Each header a token can travel in identifies the caller; the same identity is also served
    under its own SPIFFE ID and ROOTCA under the trust domain's name."""
    agent = node_agent("token", extra=["--jwt-keys", jwt_keys.pem_path])  # the PEM form of --jwt-keys
    for i, (form, metadata) in enumerate(TOKEN_FORMS.items()):
        spiffe_id = f"{TRUST_DOMAIN}/ns/forms/sa/client-{i}"
        tok = jwt_keys.mint(sub=service_account_sub(spiffe_id), alg="RS256" if i == 1 else "ES256")
        secrets = assert_serves(probe(agent.socket_path, metadata=metadata(tok)), spiffe_id)
        print(f"{form}: served {spiffe_id} serial {secrets['default']['serial']}")
        aliases = served(probe(agent.socket_path, names=[spiffe_id, TRUST_DOMAIN], metadata=metadata(tok)))
        assert aliases[spiffe_id]["chain"] == secrets["default"]["chain"], f"{spiffe_id} differs from default"
        assert aliases[spiffe_id]["key"] == secrets["default"]["key"], f"{spiffe_id} key differs from default"
        assert aliases[TRUST_DOMAIN].get("roots") == secrets["ROOTCA"]["roots"], f"{TRUST_DOMAIN} differs from ROOTCA"
        assert tok not in "\n".join(agent.log_lines() + agent.stdout_lines()), f"{form}: the token was logged"


def test_node_agent_yaml_config(processes, open_dirs, jwt_keys):
    """--caller-identity, --workload (a list of rules) and --jwt-keys as YAML keys of --config;
    peer-or-token: a token wins when sent, else the first matching workload rule."""
    require_node_agent()
    d = open_dirs()
    config = d / "agent.yaml"
    config.write_text(
        "caller-identity: peer-or-token\n"
        f"jwt-keys: {jwt_keys.jwks_path}\n"
        "socket-mode: \"0666\"\n"
        "workload:\n"
        f"  - {{uid: 0, gid: 4242, spiffe-id: \"{WRONG_ID}\"}}\n"  # gid does not match: AND
        f"  - {{gid: {UID_X}, spiffe-id: \"{ID_B}\"}}\n"  # a gid-only rule
        f"  - {{uid: 0, spiffe-id: \"{ID_A}\"}}\n"  # the first matching rule for root
        f"  - {{uid: 0, spiffe-id: \"{WRONG_ID}\"}}\n")
    agent = _start_agent(processes, d, "10m", ["--config", config], name="sds-agent-yaml")
    assert_serves(probe(agent.socket_path), ID_A)
    assert_serves(probe(agent.socket_path, uid=UID_X + 1, gid=UID_X), ID_B)
    mark = log_mark(agent)
    details = assert_refused(probe(agent.socket_path, uid=UID_X, gid=UID_X + 1), "PERMISSION_DENIED",
                             rf"\buid={UID_X}\b", rf"\bgid={UID_X + 1}\b")
    print(f"uid {UID_X} gid {UID_X + 1} (the rule wants gid {UID_X}): PERMISSION_DENIED {details!r}\n"
          f"  log: {wait_refusal_logged(agent, mark, f'gid={UID_X + 1}')}")
    tok = jwt_keys.mint(sub=service_account_sub(ID_T))
    assert_serves(probe(agent.socket_path, metadata=[("authorization", f"Bearer {tok}")]), ID_T)
    assert_serves(probe(agent.socket_path, uid=UID_X, gid=UID_X + 1, metadata=[(ISTIO_BIN_HEADER, tok)]), ID_T)
    print(f"YAML config: root -> {ID_A} (third rule), gid {UID_X} -> {ID_B}, a token -> {ID_T} (mapped or not)")
    # A token that was sent but does not verify is refused: no falling back to the peer rule.
    mark = log_mark(agent)
    forged = jwt_keys.mint(sub=service_account_sub(ID_T), unpublished_key=True)
    details = assert_refused(probe(agent.socket_path, metadata=[("authorization", f"Bearer {forged}")]),
                             "UNAUTHENTICATED", r"signature|verif")
    print(f"root (rule: {ID_A}) with a forged token: UNAUTHENTICATED {details!r}\n"
          f"  log: {wait_refusal_logged(agent, mark)}")


# --------------------------------------------------------------------------- 3: refusals


def test_node_agent_refuses_unmapped_peer(node_agent):
    agent = node_agent("peer", workloads=[f"uid={UID_A},spiffe-id={ID_A}"])
    assert_serves(probe(agent.socket_path, uid=UID_A), ID_A)  # control: the mapped uid is served
    for uid in (None, UID_X):  # root (the test itself) and an unprivileged uid map to nothing
        n = 0 if uid is None else uid
        mark = log_mark(agent)
        result = probe(agent.socket_path, uid=uid)
        details = assert_refused(result, "PERMISSION_DENIED", rf"\buid={n}\b", rf"\bgid={n}\b")
        line = wait_refusal_logged(agent, mark, f"uid={n}")
        print(f"unmapped uid {n}: PERMISSION_DENIED {details!r}\n  log: {line}")
    assert agent.alive()


def test_node_agent_refuses_bad_tokens(node_agent, jwt_keys):
    agent = node_agent("token", extra=["--jwt-keys", jwt_keys.jwks_path])
    good = jwt_keys.mint(sub=service_account_sub(ID_T))
    assert_serves(probe(agent.socket_path, metadata=[("authorization", f"Bearer {good}")]), ID_T)  # control
    cases = {
        # name: (metadata, regex the message must match)
        "forged (signed by an unpublished key)": (
            [("authorization", f"Bearer {jwt_keys.mint(sub=service_account_sub(ID_T), unpublished_key=True)}")],
            r"signature|verif"),
        "forged, in istio_sds_credentials_header-bin": (
            [(ISTIO_BIN_HEADER, jwt_keys.mint(sub=service_account_sub(ID_A), unpublished_key=True))],
            r"signature|verif"),
        "expired": ([("authorization", f"Bearer {jwt_keys.mint(sub=service_account_sub(ID_T), exp_in=-120)}")],
                    r"expired|\bexp\b"),
        "wrong audience": ([("authorization", f"Bearer {jwt_keys.mint(aud='not-istio-ca')}")],
                           r"\baud\b|audience|not-istio-ca"),
        "no token": ([], r"token|authorization|credential|missing|no "),
    }
    for case, (metadata, pattern) in cases.items():
        mark = log_mark(agent)
        details = assert_refused(probe(agent.socket_path, metadata=metadata), "UNAUTHENTICATED", pattern)
        line = wait_refusal_logged(agent, mark)
        print(f"{case}: UNAUTHENTICATED {details!r}\n  log: {line}")
        for _, value in metadata:  # a token is a credential, even a bad one: never logged
            sent = value.removeprefix("Bearer ")
            assert not any(sent in l for l in log_since(agent, mark)), f"{case}: the token was logged"
    assert agent.alive()


def test_node_agent_peer_and_token_must_agree(node_agent, jwt_keys):
    agent = node_agent("peer-and-token", workloads=[f"uid=0,spiffe-id={ID_A}"],
                       extra=["--jwt-keys", jwt_keys.jwks_path])
    token_a = jwt_keys.mint(sub=service_account_sub(ID_A))
    token_b = jwt_keys.mint(sub=service_account_sub(ID_B))
    assert_serves(probe(agent.socket_path, metadata=[("authorization", f"Bearer {token_a}")]), ID_A)  # control

    mark = log_mark(agent)
    details = assert_refused(probe(agent.socket_path, metadata=[("authorization", f"Bearer {token_b}")]),
                             "PERMISSION_DENIED", re.escape(ID_B) + "|" + re.escape(ID_A) + "|api.*backend")
    line = wait_refusal_logged(agent, mark)
    print(f"root (rule: {ID_A}) with a token for {ID_B}: PERMISSION_DENIED {details!r}\n  log: {line}")

    # Both are required: no token, or a peer no rule maps, is refused too.
    mark = log_mark(agent)
    result = probe(agent.socket_path)
    assert not result["responses"], f"a caller without a token was served: {brief(result)}"
    assert result["code"] in ("UNAUTHENTICATED", "PERMISSION_DENIED"), brief(result)
    print(f"root without a token: {result['code']} {result['details']!r}\n  log: {wait_refusal_logged(agent, mark)}")
    mark = log_mark(agent)
    details = assert_refused(probe(agent.socket_path, uid=UID_X, metadata=[(ISTIO_BIN_HEADER, token_a)]),
                             "PERMISSION_DENIED", rf"\buid={UID_X}\b", rf"\bgid={UID_X}\b")
    print(f"uid {UID_X} (no rule) with a valid token: PERMISSION_DENIED {details!r}\n"
          f"  log: {wait_refusal_logged(agent, mark, f'uid={UID_X}')}")
    assert agent.alive()


def test_node_agent_refuses_another_identitys_name(node_agent):
    agent = node_agent("peer", workloads=[f"uid=0,spiffe-id={ID_A}", f"uid={UID_A},spiffe-id={ID_B}"])
    mine = assert_serves(probe(agent.socket_path), ID_A)
    aliases = served(probe(agent.socket_path, names=[ID_A, TRUST_DOMAIN]))
    assert aliases[ID_A]["chain"] == mine["default"]["chain"], f"{ID_A} is not the same as default"
    assert aliases[TRUST_DOMAIN]["roots"] == mine["ROOTCA"]["roots"], f"{TRUST_DOMAIN} is not the same as ROOTCA"
    for names in ([ID_B], ["default", "ROOTCA", ID_B]):
        mark = log_mark(agent)
        details = assert_refused(probe(agent.socket_path, names=names), "PERMISSION_DENIED", re.escape(ID_B))
        line = wait_refusal_logged(agent, mark, ID_B)
        print(f"root ({ID_A}) asking for {names}: PERMISSION_DENIED {details!r}\n  log: {line}")
    # The same on a stream that was served first: a later request adding ID_B ends it.
    stream = SdsStream(agent.socket_path, node_id="midstream")
    try:
        first = stream.first_response_acked()
        assert set(secrets_of(first)) == {"default", "ROOTCA"}
        mark = log_mark(agent)
        stream.send(sds_request(["default", "ROOTCA", ID_B], "midstream", version_info=first.version_info,
                                response_nonce=first.nonce))
        kind, value = stream.next_event()
        assert kind == "error", f"a served stream asking for {ID_B} got {kind}: {value}"
        assert value.code().name == "PERMISSION_DENIED" and ID_B in (value.details() or ""), \
            f"{value.code().name} {value.details()!r}"
        print(f"served stream then asking for {ID_B}: {value.code().name} {value.details()!r}\n"
              f"  log: {wait_refusal_logged(agent, mark, ID_B)}")
    finally:
        stream.close()
    assert_serves(probe(agent.socket_path, uid=UID_A), ID_B)  # and ID_B's owner still gets it
    assert agent.alive()


def test_node_agent_caller_stream_rate(node_agent):
    """--caller-stream-rate: a caller opening streams faster is refused (RESOURCE_EXHAUSTED, with
    when to retry); another caller is not affected."""
    agent = node_agent("peer", workloads=[f"uid=0,spiffe-id={ID_A}", f"uid={UID_X},spiffe-id={ID_B}"],
                       extra=["--caller-stream-rate", "2/m"])
    for _ in range(2):
        assert_serves(probe(agent.socket_path), ID_A)
    mark = log_mark(agent)
    details = assert_refused(probe(agent.socket_path), "RESOURCE_EXHAUSTED", re.escape(ID_A), r"retry|again|wait")
    print(f"third stream of {ID_A} within a minute: RESOURCE_EXHAUSTED {details!r}\n"
          f"  log: {wait_refusal_logged(agent, mark, ID_A)}")
    assert_serves(probe(agent.socket_path, uid=UID_X), ID_B)


BAD_SETTINGS = {
    # name: (extra args of `run`, regex the error must match)
    "unknown mode": (["--caller-identity", "bogus"], r"caller-identity.*bogus|bogus.*peer-and-token"),
    "rule without spiffe-id": (["--caller-identity", "peer", "--workload", "uid=1001"], r"spiffe-id"),
    "uid not a number": (["--caller-identity", "peer", "--workload", f"uid=abc,spiffe-id={ID_A}"], r"\buid\b"),
    "relative exe": (["--caller-identity", "peer", "--workload", f"exe=bin/envoy,spiffe-id={ID_A}"], r"absolute"),
    "rule without selector": (["--caller-identity", "peer", "--workload", f"spiffe-id={ID_A}"],
                              r"uid|gid|exe"),
    "unknown selector": (["--caller-identity", "peer", "--workload", f"uid=1,pid=2,spiffe-id={ID_A}"],
                         r"pid=2|uid=N"),
    "foreign trust domain": (["--caller-identity", "peer",
                              "--workload", "uid=1,spiffe-id=spiffe://other.test/ns/a/sa/b"], r"trust domain"),
    "peer without rules": (["--caller-identity", "peer"], r"workload|rule"),
    "rules in agent mode": (["--workload", f"uid=1,spiffe-id={ID_A}"], r"caller-identity"),
    "token without jwt-keys": (["--caller-identity", "token"], r"jwt-keys"),
    "unreadable jwt-keys": (["--caller-identity", "token", "--jwt-keys", "/nonexistent/jwks.json"],
                            r"/nonexistent/jwks\.json"),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_node_agent_rejects_bad_settings(case, open_dirs):
    """A node-agent setting that cannot work stops the agent at startup with a message that says
    what is wrong, before it serves anything."""
    require_node_agent()
    extra, pattern = BAD_SETTINGS[case]
    d = open_dirs()
    argv = [str(agent_bin()), "run", "--socket", str(d / "sds.sock"), "--state-dir", str(d / "state"), *extra]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    out = (res.stderr + res.stdout).strip()
    print(f"{case}: exit {res.returncode}: {out.splitlines()[0] if out else ''}")
    assert res.returncode != 0, f"{case}: the agent accepted {extra} (exit 0)\n{out}"
    assert re.search(pattern, out, re.I), f"{case}: the error does not match /{pattern}/:\n{out}"
    assert "serving SDS" not in res.stdout, f"{case}: the agent served before refusing its settings"
    assert not (d / "sds.sock").exists(), f"{case}: socket left behind"


# --------------------------------------------------------------------------- 4: --ca istio


def ca_signed(ca, mark: int, spiffe_id: str, timeout: float = 10.0) -> str:
    """The `ca serve` log line (after index `mark`) that signed a certificate for spiffe_id."""
    deadline = time.monotonic() + timeout
    while True:
        for line in ca.log_lines()[mark:] + ca.stdout_lines():
            if "signed certificate" in line and f"identity={spiffe_id}" in line.replace('"', ""):
                return line
        assert time.monotonic() < deadline, f"`ca serve` logged no certificate for {spiffe_id}\n{ca.tail()}"
        time.sleep(0.1)


def istio_node_agent(node_agent, ca, token_file: Path, mode: str):
    return node_agent(mode, workloads=[f"uid=0,spiffe-id={ID_A}", f"uid={UID_X},spiffe-id={ID_B}"],
                      extra=["--ca", "istio", "--ca-address", ca.address, "--ca-root", ca.root_path,
                             "--token-file", token_file],
                      identity=None)


def test_node_agent_istio_ca_token_and_impersonation(start_ca_serve, node_agent, jwt_keys, open_dirs):
    ca = start_ca_serve(extra_args=["--trusted-node-identity", ID_NODE])
    node_token = jwt_keys.write_token(open_dirs() / "node-token", sub=service_account_sub(ID_NODE))
    agent = istio_node_agent(node_agent, ca, node_token, "peer-or-token")

    # A token-identified caller: the CA sees (and verifies) the caller's own token.
    mark = len(ca.log_lines())
    tok = jwt_keys.mint(sub=service_account_sub(ID_T))
    secrets = assert_serves(probe(agent.socket_path, metadata=[("authorization", f"Bearer {tok}")]), ID_T)
    print(f"token caller: served {ID_T}; ca serve: {ca_signed(ca, mark, ID_T)}")
    assert ders(secrets["ROOTCA"]["roots"]) == ders(ca.root_path.read_text()), "ROOTCA is not the CA's root"

    # Peer-identified callers: the agent's own token plus ImpersonatedIdentity, accepted from ID_NODE.
    for uid, want in ((None, ID_A), (UID_X, ID_B)):
        mark = len(ca.log_lines())
        assert_serves(probe(agent.socket_path, uid=uid), want)
        print(f"peer caller uid {0 if uid is None else uid}: served {want}; ca serve: {ca_signed(ca, mark, want)}")

    # The agent has no --jwt-keys here: a forged token must not get anything, not even the
    # certificate already issued to the identity it names.
    for spiffe_id in (ID_T, f"{TRUST_DOMAIN}/ns/forged/sa/forged"):
        forged = jwt_keys.mint(sub=service_account_sub(spiffe_id), unpublished_key=True)
        mark = log_mark(agent)
        details = assert_refused(probe(agent.socket_path, metadata=[(ISTIO_BIN_HEADER, forged)]), "UNAUTHENTICATED")
        print(f"forged token for {spiffe_id}: UNAUTHENTICATED {details!r}\n  log: {wait_refusal_logged(agent, mark)}")
    assert agent.alive() and ca.alive()


def test_node_agent_istio_ca_refuses_untrusted_impersonation(start_ca_serve, node_agent, jwt_keys, open_dirs):
    ca = start_ca_serve()  # no --trusted-node-identity
    node_token = jwt_keys.write_token(open_dirs() / "node-token", sub=service_account_sub(ID_NODE))
    agent = istio_node_agent(node_agent, ca, node_token, "peer-or-token")
    mark_ca, mark = len(ca.log_lines()), log_mark(agent)
    details = assert_refused(probe(agent.socket_path), "PERMISSION_DENIED", re.escape(ID_A), r"trusted|imperson")
    print(f"peer caller (uid 0 -> {ID_A}) of an untrusted node: PERMISSION_DENIED {details!r}")
    print(f"  agent: {wait_refusal_logged(agent, mark, ID_A)}")
    deadline = time.monotonic() + 10
    while not (refusals := [l for l in ca.log_lines()[mark_ca:] if "refused" in l]):
        assert time.monotonic() < deadline, f"`ca serve` logged no refusal\n{ca.tail()}"
        time.sleep(0.1)
    print(f"  ca serve: {refusals[0]}")
    assert ID_NODE in refusals[0] and re.search(r"imperson|trusted", refusals[0], re.I), refusals[0]
    assert not any("signed certificate" in l and ID_A in l for l in ca.log_lines()), "ca serve signed for ID_A"
    # A token-identified caller of the same agent is still served (the CA itself works).
    tok = jwt_keys.mint(sub=service_account_sub(ID_T))
    assert_serves(probe(agent.socket_path, metadata=[(ISTIO_BIN_HEADER, tok)]), ID_T)
    assert agent.alive() and ca.alive()


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--probe":
    _probe_main(json.loads(sys.argv[2]))
