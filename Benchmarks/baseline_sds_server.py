"""Baseline SDS server for the FetchSecrets throughput benchmark: Python grpcio (gRPC C-core)
answering FetchSecrets on a Unix socket with a fixed, pre-serialized DiscoveryResponse (the
agent's own answer), after parsing the request like a real server would.

Usage: baseline_sds_server.py --socket PATH --response FILE
"""
import argparse
import os
import signal
import sys
import threading
from concurrent import futures

import grpc
from envoy.service.discovery.v3 import discovery_pb2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--response", required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    # A parent's worker thread may have started us with these blocked (the mask is inherited):
    # unblock them, or SIGTERM would stay pending forever.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    response = open(args.response, "rb").read()

    def fetch(request: discovery_pb2.DiscoveryRequest, context) -> bytes:
        return response

    handler = grpc.method_handlers_generic_handler(
        "envoy.service.secret.v3.SecretDiscoveryService",
        {
            "FetchSecrets": grpc.unary_unary_rpc_method_handler(
                fetch,
                request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                response_serializer=None,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
    server.add_generic_rpc_handlers((handler,))
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    server.add_insecure_port(f"unix:{args.socket}")
    server.start()
    print("serving", flush=True)
    stop.wait()  # signal handlers run on this, the main, thread
    server.stop(0).wait()
    sys.exit(0)


if __name__ == "__main__":
    main()
