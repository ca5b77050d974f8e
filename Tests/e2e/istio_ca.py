#!/usr/bin/env python3
"""An independent, Istio-compatible CA for the sds-agent end-to-end tests (test tooling only).

It serves `istio.v1.auth.IstioCertificateService/CreateCertificate` over TLS and answers in the
LEGACY style istiod and istio-csr use today: `cert_chain = [leaf, root]`, `root_cert` unset. It
verifies nothing (no token, no CSR policy): it certifies the CSR's key and URI SAN for the
requested `validity_duration` -- unless told to misbehave:

  good       a correct answer
  wrong-key  certifies a different key than the CSR's
  wrong-san  certifies another SPIFFE ID than the CSR asks for
  expired    the leaf expired an hour ago
  untrusted  the leaf is signed by a root the answer does not contain

Usage:
  python Tests/e2e/istio_ca.py --listen 127.0.0.1:PORT --mode good --out-dir DIR

writes DIR/root-cert.pem (the root to pass to `sds-agent run --ca-root`; it signs the TLS serving
certificate for localhost/127.0.0.1 and every `good` leaf), then prints one line
`istio_ca: serving IstioCertificateService on HOST:PORT (mode MODE)` once it listens.
If DIR/mode exists, its content overrides --mode for every request (tests switch modes live).
Each request is appended to DIR/requests.jsonl (metadata, validity, SANs, mode, issued serial).
The root key is kept in DIR, so a restart with the same DIR keeps the same root. SIGTERM stops it.

The Python stubs are generated at run time from the project's ca.proto (see `load_protos`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.resources
import ipaddress
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "Sources" / "EnvoySDSProtos" / "Protos"
CA_PROTO = "istio/v1/auth/ca.proto"
MODES = ("good", "wrong-key", "wrong-san", "expired", "untrusted")
READY_PREFIX = "istio_ca: serving IstioCertificateService on "
WRONG_SAN = "spiffe://cluster.local/ns/intruder/sa/not-you"
DEFAULT_VALIDITY = 3600


# --------------------------------------------------------------------------- stubs


def load_protos():
    """(ca_pb2, ca_pb2_grpc) generated with grpcio-tools from ca.proto into a cache directory.

    The directory name carries a hash of the .proto and the grpcio-tools version, so an edited
    .proto gets fresh stubs; generation goes to a temporary directory renamed into place, so
    concurrent test processes never see half-written files. Nothing is written to the repo.
    """
    from grpc_tools import protoc
    import grpc_tools

    source = (PROTO_ROOT / CA_PROTO).read_bytes()
    version = getattr(grpc_tools, "__version__", "") or _dist_version("grpcio-tools")
    digest = hashlib.sha256(source + version.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("SDS_E2E_PROTO_CACHE", tempfile.gettempdir()))
    out = cache / f"sds-agent-e2e-istio-protos-{digest}"
    if not (out / "istio" / "v1" / "auth" / "ca_pb2_grpc.py").exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp.", dir=cache))
        include = str(importlib.resources.files("grpc_tools") / "_proto")  # google/protobuf/struct.proto
        rc = protoc.main(["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}",
                          f"--python_out={tmp}", f"--grpc_python_out={tmp}", CA_PROTO])
        if rc != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"grpc_tools.protoc failed ({rc}) on {PROTO_ROOT / CA_PROTO}")
        try:
            os.rename(tmp, out)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    from istio.v1.auth import ca_pb2, ca_pb2_grpc  # noqa: E402

    return ca_pb2, ca_pb2_grpc


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


# --------------------------------------------------------------------------- certificates


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def pem_cert(cert) -> str:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode()


def pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_root(common_name: str, key=None, days: int = 3650):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = key or new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sds-agent e2e"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def issue_leaf(issuer_key, issuer_cert, public_key, *, uris=(), dns=(), ips=(), not_before, not_after,
               server_auth=True):
    """A workload leaf as istiod makes them: empty subject, critical SAN, server+client auth."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    sans = ([x509.UniformResourceIdentifier(u) for u in uris] + [x509.DNSName(d) for d in dns]
            + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips])
    eku = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server_auth else \
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(issuer_cert.subject)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                              critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def csr_uri_sans(csr) -> list[str]:
    from cryptography import x509

    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return ext.value.get_values_for_type(x509.UniformResourceIdentifier)


# --------------------------------------------------------------------------- the CA


class LegacyIstioCA:
    def __init__(self, out_dir: Path, mode: str, hosts=("localhost",), ips=("127.0.0.1",)):
        from cryptography.hazmat.primitives import serialization

        self.out_dir = out_dir
        self.default_mode = mode
        self.lock = threading.Lock()
        out_dir.mkdir(parents=True, exist_ok=True)
        key_path = out_dir / "root-key.pem"
        if key_path.exists():  # a restart keeps the root clients already trust
            root_key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            from cryptography import x509

            self.root_key, self.root = root_key, x509.load_pem_x509_certificate((out_dir / "root-cert.pem").read_bytes())
        else:
            self.root_key, self.root = make_root("e2e legacy Istio CA root")
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem_key(self.root_key))
            (out_dir / "root-cert.pem").write_text(pem_cert(self.root))
        # The root that signs `untrusted` leaves; never returned, never written.
        self.rogue_key, self.rogue = make_root("e2e rogue root (never returned)")
        now = _now()
        self.serving_key = new_key()
        self.serving_cert = issue_leaf(self.root_key, self.root, self.serving_key.public_key(), dns=hosts, ips=ips,
                                       not_before=now - dt.timedelta(minutes=5),
                                       not_after=now + dt.timedelta(days=2))

    def mode(self) -> str:
        try:
            mode = (self.out_dir / "mode").read_text().strip()
        except FileNotFoundError:
            return self.default_mode
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} in {self.out_dir / 'mode'}")
        return mode

    def create_certificate(self, csr_pem: str, validity_seconds: int, metadata: dict) -> tuple[list[str], dict]:
        from cryptography import x509

        mode = self.mode()
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        uris = csr_uri_sans(csr)
        validity = validity_seconds if validity_seconds > 0 else DEFAULT_VALIDITY
        now = _now()
        not_before, not_after = now - dt.timedelta(seconds=10), now + dt.timedelta(seconds=validity)
        key = csr.public_key()
        signer_key, signer = self.root_key, self.root
        if mode == "wrong-key":
            key = new_key().public_key()
        elif mode == "wrong-san":
            uris = [WRONG_SAN]
        elif mode == "expired":
            not_before, not_after = now - dt.timedelta(hours=2), now - dt.timedelta(hours=1)
        elif mode == "untrusted":
            signer_key, signer = self.rogue_key, self.rogue
        leaf = issue_leaf(signer_key, signer, key, uris=uris, not_before=not_before, not_after=not_after)
        record = {"time": now.timestamp(), "mode": mode, "metadata": metadata, "validity_duration": validity_seconds,
                  "csr_uri_sans": csr_uri_sans(csr), "issued_uri_sans": uris,
                  "serial": format(leaf.serial_number, "x"), "not_after": not_after.isoformat()}
        with self.lock, open(self.out_dir / "requests.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        return [pem_cert(leaf), pem_cert(self.root)], record  # LEGACY: leaf, root last; no root_cert


def serve(listen: str, mode: str, out_dir: Path) -> None:
    import grpc
    from concurrent import futures

    ca_pb2, ca_pb2_grpc = load_protos()
    ca = LegacyIstioCA(out_dir, mode)

    class Servicer(ca_pb2_grpc.IstioCertificateServiceServicer):
        def CreateCertificate(self, request, context):
            metadata = {}
            for k, v in context.invocation_metadata():
                metadata.setdefault(k, v if isinstance(v, str) else v.hex())
            try:
                chain, _ = ca.create_certificate(request.csr, request.validity_duration, metadata)
            except ValueError as e:  # unparsable CSR: the only thing it checks
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"e2e legacy CA: {e}")
            return ca_pb2.IstioCertificateResponse(cert_chain=chain)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    ca_pb2_grpc.add_IstioCertificateServiceServicer_to_server(Servicer(), server)
    creds = grpc.ssl_server_credentials([(pem_key(ca.serving_key), pem_cert(ca.serving_cert).encode())])
    port = server.add_secure_port(listen, creds)
    if port == 0:
        raise SystemExit(f"istio_ca: cannot listen on {listen}")
    server.start()
    host = listen.rsplit(":", 1)[0]
    stopped = threading.Event()

    def on_sigterm(signum, frame):
        stopped.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    print(f"{READY_PREFIX}{host}:{port} (mode {mode}, root {out_dir / 'root-cert.pem'})", flush=True)
    stopped.wait()
    server.stop(grace=1).wait()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any)")
    p.add_argument("--mode", default=os.environ.get("ISTIO_CA_MODE", "good"), choices=MODES)
    p.add_argument("--out-dir", type=Path, required=True)
    args = p.parse_args(argv)
    serve(args.listen, args.mode, args.out_dir)


if __name__ == "__main__":
    main()
