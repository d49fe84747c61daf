"""A TCP proxy on loopback that cuts connections mid-flight, to force client retries.

The broker advertises the proxy's port, so clients reach it only through the proxy.
Client-to-broker bytes are forwarded frame by frame; after every `cut_every`-th Produce
request has been forwarded (and the broker has had a moment to read it), the proxy
resets both sides. The broker has appended the batch but the client never sees the
response: it must resend with the same sequence numbers, and an idempotent broker
answers the duplicate without writing it twice."""

import select
import socket
import struct
import threading
import time

from broker_process import free_port

API_PRODUCE = 0


class Proxy:
    def __init__(self, target_port=None, cut_every=0, cuts_max=0, cut_delay_s=0.01):
        self.target_port = target_port
        self.cut_every = cut_every
        self.cuts_max = cuts_max
        self.cut_delay_s = cut_delay_s
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", free_port()))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs = []
        self.produce_frames = 0
        self.cuts = 0
        self.closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.target_port is None:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(None)
            pair = (client, upstream)
            with self.lock:
                self.pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _should_cut(self, frame: bytes) -> bool:
        if len(frame) < 6 or struct.unpack_from(">h", frame, 4)[0] != API_PRODUCE:
            return False
        with self.lock:
            self.produce_frames += 1
            if self.cut_every and self.cuts < self.cuts_max and self.produce_frames % self.cut_every == 0:
                self.cuts += 1
                return True
        return False

    def _pump(self, pair):
        client, upstream = pair
        pending = b""  # client bytes not yet forwarded: an incomplete frame
        try:
            while True:
                readable, _, _ = select.select([client, upstream], [], [], 1.0)
                if upstream in readable:
                    data = upstream.recv(1 << 16)
                    if not data:
                        return
                    client.sendall(data)
                if client in readable:
                    data = client.recv(1 << 16)
                    if not data:
                        return
                    pending += data
                    while len(pending) >= 4:
                        size = struct.unpack_from(">i", pending)[0]
                        if len(pending) < 4 + size:
                            break
                        frame, pending = pending[: 4 + size], pending[4 + size :]
                        upstream.sendall(frame)
                        if self._should_cut(frame):
                            time.sleep(self.cut_delay_s)
                            self._close_pair(pair, reset=True)
                            return
        except OSError:
            return
        finally:
            self._close_pair(pair, reset=False)

    def _close_pair(self, pair, reset):
        with self.lock:
            if pair not in self.pairs:
                return
            self.pairs.remove(pair)
        for s in pair:
            try:
                if reset:
                    # SO_LINGER 0: close sends RST, like a dropped connection.
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.listener.close()
        with self.lock:
            pairs = list(self.pairs)
        for pair in pairs:
            self._close_pair(pair, reset=True)
