"""Revocation propagation: from `sds-agent ca revoke --serial` to Envoy 1.40 refusing the revoked
certificate. One sds-agent (embedded CA) serves two backend Envoys their certificate and their
validation context over SDS: `backend` validates with ROOTCA (the plain context, with the CRL),
`backend-spiffe` with ALL (Envoy's SPIFFE validator, the CRL inside its bundle). A TLS client
presents the certificate the agent serves (saved with its key before), over a new connection per
attempt; after `ca revoke` it retries until each Envoy refuses it. Each run then waits until both
Envoys hold the certificate the revocation re-issued, and revokes that one.

Times are from the moment `ca revoke` is started: its answer (the admin call, the list signed and
installed), and each Envoy's first refusal. Between attempts the client waits 2 ms, so a refusal
is seen within about a handshake plus 2 ms of when it happens.

  Benchmarks/revocation.sh [--agent PATH] [--runs N] [--markdown]
"""

from __future__ import annotations

import argparse
import http.client
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "e2e"))

from conftest import SPIFFE_ID, Agent, Envoy, _free_port, envoy_bin, norm_serial, render_example  # noqa: E402
from daemon_support import agent_argv, clean_env  # noqa: E402

ATTEMPT_GAP = 0.002  # seconds between two attempts of the client
REFUSAL_LIMIT = 30.0  # a run that takes longer is reported as a failure


def attempt(port: int, cert: Path, key: Path, root: Path) -> bool:
    """A new TLS connection presenting cert/key and a request: whether Envoy answered 200."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(str(root))
    context.load_cert_chain(str(cert), str(key))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        conn.request("GET", "/hello")
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def held(agent: Agent, work: Path, run: int) -> tuple[str, tuple[Path, Path, Path]]:
    """The certificate the agent serves now, saved 0600 with its key and the roots."""
    secrets, _ = agent.fetch("default", "ROOTCA", extra=["--show-key"])
    by_name = {s["name"]: s for s in secrets}
    files = (work / f"run{run}.pem", work / f"run{run}.key", work / f"run{run}-roots.pem")
    for path, text in zip(files, (by_name["default"]["pem"], by_name["default"]["private_key"],
                                  by_name["ROOTCA"]["pem"])):
        path.touch(mode=0o600)
        path.write_text(text)
    return norm_serial(by_name["default"]["serial"]), files


def wait_held(envoys: list[Envoy], serial: str) -> None:
    deadline = time.monotonic() + REFUSAL_LIMIT
    while not all(serial in envoy.cert_serials() for envoy in envoys):
        if time.monotonic() > deadline:
            raise SystemExit(f"the Envoys did not hold serial {serial} within {REFUSAL_LIMIT:.0f}s")
        time.sleep(0.05)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--markdown", action="store_true", help="print only the table rows, for sds-agent-bench")
    args = parser.parse_args()
    os.environ["SDS_AGENT_BIN"] = args.agent
    work = Path(tempfile.mkdtemp(prefix="revb-", dir=os.environ.get("TMPDIR") or "/tmp"))
    socket_path, admin = work / "sds.sock", f"127.0.0.1:{_free_port()}"
    argv = agent_argv(socket_path, work / "state", "--identity", SPIFFE_ID, "--trust-domain", "cluster.local",
                      admin=admin, cert_ttl="600s", log_level="warning")
    agent = Agent("agent", argv, work, socket_path, env=clean_env(), admin=admin)
    envoys: list[Envoy] = []
    try:
        agent.wait_serving()
        for example in ("backend", "backend-spiffe"):
            admin_port, port = _free_port(), _free_port()
            config = work / f"envoy-{example}.yaml"
            config.write_text(render_example(example, optional=("SPIFFE_ID",), SDS_SOCKET=socket_path,
                                             ADMIN_PORT=admin_port, LISTEN_PORT=port, SPIFFE_ID=SPIFFE_ID))
            envoy = Envoy(example, [envoy_bin(), "-c", config, "--concurrency", "1", "--disable-hot-restart",
                                    "-l", "warn"], work, admin_port, port)
            envoys.append(envoy)
            envoy.wait_live()
        answered: list[float] = []
        refused: dict[str, list[float]] = {envoy.name: [] for envoy in envoys}
        for run in range(args.runs):
            serial, files = held(agent, work, run)
            wait_held(envoys, serial)
            for envoy in envoys:
                if not attempt(envoy.listen_port, *files):
                    raise SystemExit(f"{envoy.name} refuses serial {serial} before it is revoked")
            t0 = time.monotonic()
            res = subprocess.run([args.agent, "ca", "revoke", "--serial", serial.upper(), "--reason",
                                  "keyCompromise", "--admin", admin], capture_output=True, text=True, timeout=30)
            answered.append(time.monotonic() - t0)
            if res.returncode != 0:
                raise SystemExit(f"ca revoke exited {res.returncode}: {res.stderr}")
            pending = list(envoys)
            while pending:
                for envoy in list(pending):
                    if not attempt(envoy.listen_port, *files):
                        refused[envoy.name].append(time.monotonic() - t0)
                        pending.remove(envoy)
                if time.monotonic() - t0 > REFUSAL_LIMIT:
                    raise SystemExit(f"still accepted {REFUSAL_LIMIT:.0f}s after ca revoke: {[e.name for e in pending]}")
                time.sleep(ATTEMPT_GAP)
            for path in files:
                path.unlink()
        rows = [("`ca revoke` answered", answered)] + [
            (f"refused by Envoy `{name}` ({'ROOTCA' if name == 'backend' else 'ALL, SPIFFE validator'})", times)
            for name, times in refused.items()]
        if not args.markdown:
            version = subprocess.run([str(envoy_bin()), "--version"], capture_output=True, text=True).stdout
            print(f"Envoy {version.split('/')[1] if '/' in version else '?'}, agent {args.agent}, {args.runs} runs")
            print("| since `ca revoke` started | runs | p50 | mean | max |\n| --- | --- | --- | --- | --- |")
        for label, times in rows:
            print(f"| {label} | {len(times)} | {percentile(times, 50) * 1000:.0f} ms | "
                  f"{statistics.mean(times) * 1000:.0f} ms | {max(times) * 1000:.0f} ms |")
        return 0
    finally:
        for envoy in envoys:
            envoy.stop()
        agent.stop()


if __name__ == "__main__":
    sys.exit(main())
