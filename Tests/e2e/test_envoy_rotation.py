"""Core proof: two Envoys keep talking mTLS while sds-agent rotates their certificates.

gateway Envoy (plain HTTP in) --mTLS--> backend Envoy (direct 200), both getting
`default` and `ROOTCA` from one sds-agent with a 20 s certificate lifetime.
"""

import http.client
import json
import subprocess
import threading
import time

from conftest import SPIFFE_ID, wait_envoys_hold

MIN_DURATION = 35.0  # seconds of traffic before we may stop early
MAX_DURATION = 60.0
REQUEST_INTERVAL = 0.1  # pacing of the traffic loop (~10 requests/s)
MIN_SERIALS = 3


def split_pem(pem: str) -> list[str]:
    marker = "-----END CERTIFICATE-----"
    return [block.strip() + "\n" + marker + "\n" for block in pem.split(marker) if block.strip()]


class CertPoller(threading.Thread):
    """Polls each Envoy's admin /certs and collects the distinct leaf serials it holds."""

    def __init__(self, envoys, interval=0.5):
        super().__init__(daemon=True)
        self.envoys = envoys
        self.interval = interval
        self.serials = {e.name: [] for e in envoys}  # in order of first appearance
        self.first_seen = {e.name: [] for e in envoys}  # monotonic time of each first appearance
        self.errors = []
        self.stop_event = threading.Event()
        self.lock = threading.Lock()

    def poll_once(self):
        for e in self.envoys:
            try:
                current = e.cert_serials()
            except Exception as ex:  # noqa: BLE001 - reported, and asserted below
                self.errors.append(f"{e.name}: {ex!r}")
                continue
            with self.lock:
                for s in sorted(current):
                    if s not in self.serials[e.name]:
                        self.serials[e.name].append(s)
                        self.first_seen[e.name].append(time.monotonic())

    def count(self, name):
        with self.lock:
            return len(self.serials[name])

    def run(self):
        while not self.stop_event.is_set():
            self.poll_once()
            self.stop_event.wait(self.interval)


def get(port: int):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/hello")
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("x-peer-spiffe-id")
    finally:
        conn.close()


def stat(envoy, name: str) -> int:
    for line in envoy.admin(f"/stats?filter=^{name}$").splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return -1


def test_rotation_under_traffic(start_agent, start_envoy, tmp_path):
    agent = start_agent(cert_ttl="20s")
    backend = start_envoy("backend", agent.socket_path)
    gateway = start_envoy("gateway", agent.socket_path, BACKEND_PORT=backend.listen_port)
    pids = {backend.name: backend.pid, gateway.name: gateway.pid}

    poller = CertPoller([gateway, backend])
    poller.poll_once()
    poller.start()

    sent = failed = 0
    failures = []
    peer_ids = set()
    t0 = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - t0
            if elapsed >= MAX_DURATION:
                break
            if elapsed >= MIN_DURATION and all(poller.count(e.name) >= MIN_SERIALS for e in (gateway, backend)):
                break
            sent += 1
            try:
                status, peer = get(gateway.listen_port)
                if status != 200:
                    failed += 1
                    failures.append(f"t={elapsed:.1f}s status {status}")
                else:
                    peer_ids.add(peer)
            except OSError as e:
                failed += 1
                failures.append(f"t={elapsed:.1f}s {e!r}")
            time.sleep(REQUEST_INTERVAL)
    finally:
        poller.stop_event.set()
        poller.join(10)
    duration = time.monotonic() - t0

    serials_gw = poller.serials[gateway.name]
    serials_be = poller.serials[backend.name]
    backend_listener = f"listener.127.0.0.1_{backend.listen_port}"
    print(f"\nrequests={sent} failed={failed} serials_gateway={serials_gw} serials_backend={serials_be}")
    handshakes_gw = stat(gateway, "cluster.backend.ssl.handshake")
    handshakes_be = stat(backend, backend_listener + ".ssl.handshake")
    print(f"duration={duration:.1f}s agent_startup={agent.startup_seconds:.2f}s "
          f"gateway_upstream_handshakes={handshakes_gw} backend_downstream_handshakes={handshakes_be} "
          f"admin_poll_errors={len(poller.errors)} first_poll_errors={poller.errors[:3]}")
    for name, times in poller.first_seen.items():
        gaps = [f"{b - a:.1f}s" for a, b in zip(times, times[1:])]
        print(f"{name}: new certificate every {gaps}")

    assert failed == 0, f"{failed}/{sent} requests failed, first ones: {failures[:10]}"
    assert sent >= 100, f"only {sent} requests were sent in {duration:.0f}s"
    assert len(serials_gw) >= MIN_SERIALS, f"gateway saw only {serials_gw}"
    assert len(serials_be) >= MIN_SERIALS, f"backend saw only {serials_be}"
    # The gateway recycles upstream connections (max_connection_duration), so
    # handshakes with rotated certificates happened, not just one long-lived one.
    assert handshakes_gw >= MIN_SERIALS and handshakes_be >= MIN_SERIALS, (handshakes_gw, handshakes_be)
    assert peer_ids == {SPIFFE_ID}, f"backend reported peer URI SAN(s) {peer_ids}"
    for e in (gateway, backend):
        assert e.alive(), f"{e.name} died: exit code {e.proc.poll()}"
        assert e.pid == pids[e.name]
        info = json.loads(e.admin("/server_info"))
        assert int(info["command_line_options"].get("restart_epoch", 0)) == 0, info["command_line_options"]
        assert info["state"] == "LIVE", info["state"]
    assert agent.alive(), "sds-agent exited during the test"

    # The certificate the agent serves now verifies against its own bundle, and
    # it is (or becomes, if it was minted just now) the one both Envoys hold.
    secrets, _ = agent.fetch()
    by_name = {s["name"]: s for s in secrets}
    leaf, *intermediates = split_pem(by_name["default"]["pem"])
    (tmp_path / "leaf.pem").write_text(leaf)
    (tmp_path / "intermediates.pem").write_text("".join(intermediates))
    (tmp_path / "root.pem").write_text(by_name["ROOTCA"]["pem"])
    for purpose in ("sslclient", "sslserver"):
        argv = ["openssl", "verify", "-CAfile", tmp_path / "root.pem", "-purpose", purpose]
        if intermediates:
            argv += ["-untrusted", tmp_path / "intermediates.pem"]
        res = subprocess.run([str(a) for a in argv + [tmp_path / "leaf.pem"]], capture_output=True, text=True)
        print(f"openssl verify -purpose {purpose} ({len(intermediates)} intermediate(s)): {res.stdout.strip()}")
        assert res.returncode == 0, f"openssl verify failed:\n{res.stdout}{res.stderr}"

    wait_envoys_hold((gateway, backend), by_name["default"]["serial"], timeout=30)
