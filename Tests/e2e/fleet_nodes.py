"""The pieces of a fleet drill across network namespaces (netns.py): a node's Envoy, which serves
mTLS to the other nodes and sends to each of them, and the traffic between every pair of nodes.

Each node's Envoy gets its certificate and trust bundle from its own agent over SDS; its
`ingress` listener (port 15443) requires a client certificate of the fleet's trust domain and
answers with its node's name; its `egress` listener (port 8080) sends `/to/<node>` to that node's
ingress over mTLS, checking the peer's exact SPIFFE ID. The admin interface is on the node's
address so the test, in the root namespace, can read `/certs` and `/stats`.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from pathlib import Path

from conftest import Envoy, envoy_bin
from netns import Host

INGRESS_PORT = 15443
EGRESS_PORT = 8080
ADMIN_PORT = 9901
TRUST_DOMAIN_PREFIX = "spiffe://cluster.local/ns/fleet/sa/"
REQUEST_INTERVAL = 0.05


def node_identity(name: str) -> str:
    return f"{TRUST_DOMAIN_PREFIX}{name}"


def _sds(secret: str) -> dict:
    return {"name": secret, "sds_config": {"resource_api_version": "V3", "api_config_source": {
        "api_type": "GRPC", "transport_api_version": "V3",
        "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}]}}}


def _tls_context(peer_matcher: dict) -> dict:
    return {"tls_certificate_sds_secret_configs": [_sds("default")],
            "combined_validation_context": {
                "default_validation_context": {"match_typed_subject_alt_names": [
                    {"san_type": "URI", "matcher": peer_matcher}]},
                "validation_context_sds_secret_config": _sds("ROOTCA")}}


def _http_manager(prefix: str, routes: list) -> dict:
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                 "HttpConnectionManager",
        "stat_prefix": prefix,
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
        "route_config": {"virtual_hosts": [{"name": prefix, "domains": ["*"], "routes": routes}]}}}


def _peer_cluster(peer: Host) -> dict:
    return {
        "name": f"peer-{peer.name}", "type": "STATIC", "connect_timeout": "2s",
        # New connections every few seconds, so handshakes keep using the current certificates.
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "common_http_protocol_options": {"max_connection_duration": "3s"},
            "explicit_http_config": {"http_protocol_options": {}}}},
        "load_assignment": {"cluster_name": f"peer-{peer.name}", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": peer.address, "port_value": INGRESS_PORT}}}}]}]},
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": _tls_context({"exact": node_identity(peer.name)})}}}


def node_bootstrap(host: Host, peers: list[Host], sds_socket: Path) -> dict:
    ingress = {
        "name": "ingress",
        "address": {"socket_address": {"address": host.address, "port_value": INGRESS_PORT}},
        "filter_chains": [{
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": True,
                "common_tls_context": _tls_context({"prefix": TRUST_DOMAIN_PREFIX})}},
            "filters": [_http_manager("ingress", [{"match": {"prefix": "/"}, "direct_response": {
                "status": 200, "body": {"inline_string": host.name}}}])]}]}
    egress = {
        "name": "egress",
        "address": {"socket_address": {"address": host.address, "port_value": EGRESS_PORT}},
        "filter_chains": [{"filters": [_http_manager("egress", [
            {"match": {"prefix": f"/to/{peer.name}"},
             "route": {"cluster": f"peer-{peer.name}", "prefix_rewrite": "/", "timeout": "3s"}}
            for peer in peers])]}]}
    sds_cluster = {
        "name": "sds-grpc", "type": "STATIC", "connect_timeout": "1s",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": "sds-grpc", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"pipe": {"path": str(sds_socket)}}}}]}]}}
    return {
        "node": {"id": host.name, "cluster": "fleet"},
        "admin": {"address": {"socket_address": {"address": host.address, "port_value": ADMIN_PORT}}},
        "static_resources": {"listeners": [ingress, egress],
                             "clusters": [sds_cluster, *[_peer_cluster(p) for p in peers]]}}


class NodeEnvoy(Envoy):
    """An Envoy inside a node's namespace; its admin interface is on the node's address."""

    def __init__(self, name, argv, log_dir, host: Host):
        super().__init__(name, argv, log_dir, ADMIN_PORT, INGRESS_PORT)
        self.host = host

    def admin(self, path: str, timeout: float = 5.0) -> str:
        with urllib.request.urlopen(f"http://{self.host.address}:{ADMIN_PORT}{path}", timeout=timeout) as r:
            return r.read().decode()


def start_node_envoy(processes, host: Host, peers: list[Host], sds_socket: Path, directory: Path) -> NodeEnvoy:
    config = directory / f"envoy-{host.name}.json"
    config.write_text(json.dumps(node_bootstrap(host, peers, sds_socket), indent=1))
    argv = host.argv(envoy_bin(), "-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "info")
    envoy = processes.add(NodeEnvoy(f"envoy-{host.name}", argv, directory, host))
    envoy.wait_live()
    return envoy


class PairTraffic(threading.Thread):
    """GET /to/<dst> through <src>'s egress every REQUEST_INTERVAL, for every ordered pair of
    nodes, until stopped; records every failure by pair."""

    def __init__(self, hosts: list[Host]):
        super().__init__(daemon=True)
        self.pairs = [(a, b) for a in hosts for b in hosts if a != b]
        self.sent = {(a.name, b.name): 0 for a, b in self.pairs}
        self.failures: dict[tuple[str, str], list[str]] = {(a.name, b.name): [] for a, b in self.pairs}
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self.stop_event.is_set():
            for src, dst in self.pairs:
                key = (src.name, dst.name)
                self.sent[key] += 1
                outcome = self._get(src, dst)
                if outcome != dst.name:
                    self.failures[key].append(f"t={time.monotonic() - self.t0:.1f}s {outcome}")
            self.stop_event.wait(REQUEST_INTERVAL)

    @staticmethod
    def _get(src: Host, dst: Host) -> str:
        conn = http.client.HTTPConnection(src.address, EGRESS_PORT, timeout=5)
        try:
            conn.request("GET", f"/to/{dst.name}")
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
            return body if resp.status == 200 else f"status {resp.status}: {body[:80]}"
        except (OSError, http.client.HTTPException) as e:
            return repr(e)
        finally:
            conn.close()

    def total_sent(self) -> int:
        return sum(self.sent.values())

    def stop(self):
        self.stop_event.set()
        self.join(15)

    def summary(self) -> str:
        return ", ".join(f"{a}->{b}: {self.sent[(a, b)]} sent, {len(self.failures[(a, b)])} failed"
                         for a, b in self.sent)
