"""Ray Serve internals (tested with ray[serve] 2.60.0).

`bind_replica_grpc_to_loopback`: every Serve replica opens an inter-deployment gRPC port on all
interfaces (``add_port_to_grpc_server(server, "[::]:0")`` in ``ray.serve._private.replica``);
on a node that lives on 127.0.0.1 that port is bound to 127.0.0.1 instead. Called in a
replica's constructor, which runs before the replica opens the port.

`proxy_middlewares` (with `PROXY_CALLBACK_ENV`): what Serve's HTTP proxy answers and obeys
(below).
"""

from __future__ import annotations

import ray
from ray.serve._private import replica
from starlette.middleware import Middleware

_ALL_INTERFACES = "[::]:"


def loopback_address(address):
    """``[::]:PORT`` (every interface) becomes ``127.0.0.1:PORT``; anything else is kept."""
    if isinstance(address, str) and address.startswith(_ALL_INTERFACES):
        return "127.0.0.1:" + address[len(_ALL_INTERFACES):]
    return address


def bind_replica_grpc_to_loopback() -> bool:
    """On a loopback-only node, make this replica's gRPC port listen on 127.0.0.1 only.
    Returns whether the port is (now) kept on loopback."""
    if ray.util.get_node_ip_address() != "127.0.0.1":
        return False
    original = replica.add_port_to_grpc_server
    if getattr(original, "_sanyu_loopback", False):
        return True

    def add_port_loopback(server, address):
        return original(server, loopback_address(address))

    add_port_loopback._sanyu_loopback = True
    replica.add_port_to_grpc_server = add_port_loopback
    return True


# ---- the HTTP proxy -------------------------------------------------------------------------
#
# Serve's HTTP proxy answers ``/-/routes`` (the applications and their routes) to anyone, and
# obeys two request headers that let a client switch off its limits: ``x-request-timeout-seconds:
# 0`` (no proxy timeout) and ``x-request-disconnect-disabled: ?1`` (the request goes on after the
# client is gone). The proxy reads middlewares from the import path in
# ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` in its own environment, which a Ray started by
# this process inherits; `proxy_middlewares` is that callback.

PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
PROXY_CALLBACK = "sanyu.adapters.ray_serve:proxy_middlewares"
CLIENT_LIMIT_HEADERS = (b"x-request-timeout-seconds", b"x-request-disconnect-disabled")
HIDDEN_PATHS = ("/-/routes",)


class ProxyGuard:
    """ASGI middleware in Serve's proxy: 404 for ``/-/routes``, and the client-limit headers
    dropped before the proxy reads them."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") in ("http", "websocket"):
            path = scope.get("path", "")[len(scope.get("root_path", "")):]
            if path in HIDDEN_PATHS and scope["type"] == "http":
                await send({"type": "http.response.start", "status": 404,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"Not Found"})
                return
            headers = scope.get("headers") or []
            if any(name.lower() in CLIENT_LIMIT_HEADERS for name, _ in headers):
                scope = {**scope, "headers": [(n, v) for n, v in headers
                                              if n.lower() not in CLIENT_LIMIT_HEADERS]}
        await self.app(scope, receive, send)


def proxy_middlewares() -> list:
    """The callback Serve's proxy calls (by `PROXY_CALLBACK`) for its middlewares."""
    return [Middleware(ProxyGuard)]
