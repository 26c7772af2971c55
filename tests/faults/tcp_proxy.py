"""A TCP proxy the fault tests put between a gateway and the shared PostgreSQL, so that they can
take "the database" away without touching the server itself.

- `cut()`: every open connection is reset (RST on both sides) and new connections are refused
  (the listener is closed), as a PostgreSQL restart looks to its clients;
- `restore()`: listen again on the same port;
- `swallow()`: connections stay up and the client's bytes still reach the server, but nothing
  comes back: a statement (and its COMMIT) is executed while its client never learns the
  outcome. Follow it with `cut()` to reset those connections: the client then sees an error for
  a statement that did commit.

Plain threads and blocking sockets: two pump threads per connection.
"""

import contextlib
import socket
import struct
import threading


def _reset(sock: socket.socket):
    """Close with an RST (SO_LINGER 0) rather than a FIN: what a dead server looks like.

    The pump thread blocked in recv() on this socket keeps the kernel's socket alive through a
    close(), so nothing would be sent until its peer spoke again; shutdown(SHUT_RD) wakes that
    recv() first, without sending anything (a FIN would be an orderly close)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1", port: int = 0):
        self.upstream = upstream
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._listener: socket.socket | None = None
        self._swallow = False
        self.accepted = 0  # connections accepted so far (tests: the gateway did reconnect)

    # --- control ------------------------------------------------------------------------------

    def start(self) -> "TcpProxy":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(512)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
            self._swallow = False
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self):
        """Refuse new connections and reset every open one."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread
            listener.close()
        for client, server in pairs:
            _reset(client)
            _reset(server)

    def restore(self):
        """Accept connections again, on the same port."""
        self.start()

    def swallow(self):
        """From now on, server replies are dropped (client bytes still reach the server)."""
        with self._lock:
            self._swallow = True

    def stop(self):
        self.cut()

    @property
    def url_host_port(self) -> str:
        return f"{self.host}:{self.port}"

    # --- plumbing -----------------------------------------------------------------------------

    def _accept(self, listener: socket.socket):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut() closed the listener
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _reset(client)
                    _reset(server)
                    return
                self._pairs.add((client, server))
                self.accepted += 1
            pair = (client, server)
            threading.Thread(
                target=self._pump, args=(client, server, pair, False), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, pair, True), daemon=True
            ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair, replies: bool):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if replies and self._swallow:
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                alive = pair in self._pairs
                self._pairs.discard(pair)
            if alive:  # the other side closed normally: pass the close on
                for sock in pair:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
