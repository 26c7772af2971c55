"""Raw HTTP/1.1 on a socket, for the serving tests (what a client does byte by byte matters)."""

import socket


def request(path: str, close: bool = False) -> bytes:
    connection = "close" if close else "keep-alive"
    return f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: {connection}\r\n\r\n".encode()


def read_response(sock: socket.socket, pending: bytearray) -> tuple[str, bytes]:
    """One response off the socket: (the thread id that served it, the path it saw)."""
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        pending += chunk
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        rest += chunk
    pending[:] = rest[length:]
    thread, path = rest[:length].split(b" ")
    return thread.decode(), path
