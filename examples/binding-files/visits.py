#!/usr/bin/env python3
"""A function with zero ddi code: it counts visits in the Redis that ddi
bound to it, reading only the Service Binding files the sidecar projects
under $SERVICE_BINDING_ROOT (type, provider, host, port, username, password).

Python standard library only. Run it under `ddi run` (see README.md).
"""
import os
import socket
import sys


def read_bindings(root):
    """Return {name: {key: value}} for every binding directory under root."""
    bindings = {}
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        entry = {}
        for key in os.listdir(path):
            if key.startswith("."):
                continue
            with open(os.path.join(path, key), encoding="utf-8") as f:
                entry[key] = f.read().strip()
        bindings[name] = entry
    return bindings


def find(bindings, type_):
    for name, b in bindings.items():
        if b.get("type") == type_:
            return name, b
    sys.exit(f"no binding of type {type_} under $SERVICE_BINDING_ROOT; declare one with --dep ALIAS={type_}")


def command(sock, *args):
    """Send one RESP command and return its reply (simple types only)."""
    out = f"*{len(args)}\r\n"
    for a in args:
        a = str(a)
        out += f"${len(a.encode())}\r\n{a}\r\n"
    sock.sendall(out.encode())
    f = sock.makefile("rb")
    line = f.readline().decode().rstrip("\r\n")
    kind, rest = line[0], line[1:]
    if kind == "-":
        raise RuntimeError(rest)
    if kind == ":":
        return int(rest)
    if kind == "$":
        return None if rest == "-1" else f.read(int(rest) + 2)[:-2].decode()
    return rest


def main():
    root = os.environ.get("SERVICE_BINDING_ROOT")
    if not root:
        sys.exit("SERVICE_BINDING_ROOT is not set; run me under `ddi run`")
    name, b = find(read_bindings(root), "redis")
    host, port = b.get("host", "127.0.0.1"), int(b.get("port", "6379"))
    with socket.create_connection((host, port), timeout=5) as sock:
        if b.get("password"):
            if b.get("username"):
                command(sock, "AUTH", b["username"], b["password"])
            else:
                command(sock, "AUTH", b["password"])
        visits = command(sock, "INCR", "visits")
    print(f"visits: {visits} (dependency {name}, provider {b.get('provider', '?')} at {host}:{port})")


if __name__ == "__main__":
    main()
