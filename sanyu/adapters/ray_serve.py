"""Ray Serve internals (tested with ray[serve] 2.60.0).

`bind_replica_grpc_to_loopback`: every Serve replica opens an inter-deployment gRPC port on all
interfaces (``add_port_to_grpc_server(server, "[::]:0")`` in ``ray.serve._private.replica``);
on a node that lives on 127.0.0.1 that port is bound to 127.0.0.1 instead. Called in a
replica's constructor, which runs before the replica opens the port.
"""

from __future__ import annotations

import ray
from ray.serve._private import replica

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
