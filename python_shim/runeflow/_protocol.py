"""Frames on the worker sockets (see python_shim/PROTOCOL.md).

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8
JSON. Reads are exact (never past the end of a frame), so a file descriptor
sent with SCM_RIGHTS on the first byte of the next frame is never consumed
by accident.
"""

import json
import os
import socket
import threading

#: Largest frame either side accepts (RUNEFLOW_MAX_FRAME_BYTES on the worker).
MAX_FRAME_BYTES = 16 * 1024 * 1024

_HEADER = 4

#: Compact UTF-8 JSON that refuses NaN/Infinity; built once, not per frame.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class ProtocolError(Exception):
    """The peer broke the framing or sent a message we cannot use."""


class ForeignProcessError(ProtocolError):
    """A process forked by the workflow tried to use the execution's socket."""


def encode(message):
    """One frame (header included) for a JSON-able dict.

    Raises ValueError/TypeError for values JSON cannot carry (NaN, objects,
    lone surrogates) and ProtocolError for frames over the limit.
    """
    body = _ENCODER.encode(message).encode("utf-8")
    if len(body) > MAX_FRAME_BYTES:
        raise ProtocolError(
            f"frame of {len(body)} bytes is over the limit of {MAX_FRAME_BYTES}")
    return len(body).to_bytes(_HEADER, "big") + body


def send(sock, message):
    """Sends one message as a frame."""
    sock.sendall(encode(message))


def send_raw(sock, data):
    """Sends bytes as one frame (a blob announced by the message before it)."""
    sock.sendall(len(data).to_bytes(_HEADER, "big") + data)


def recv_raw(sock, max_bytes=MAX_FRAME_BYTES):
    """Reads one frame's bytes (a blob); ProtocolError at EOF or over the limit."""
    header = recv_exact(sock, _HEADER)
    if header is None:
        raise ProtocolError("connection closed before a blob frame")
    return _body(header, sock, max_bytes)


def recv_exact(sock, size, first=b""):
    """Reads exactly `size` bytes; None on a clean EOF before any byte."""
    buf = bytearray(first)
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            if not buf:
                return None
            raise ProtocolError("connection closed in the middle of a frame")
        buf += chunk
    return bytes(buf)


def _body(header, sock, max_bytes):
    """The bytes of the frame whose header is `header`, size-checked first."""
    length = int.from_bytes(header, "big")
    if length > max_bytes:
        raise ProtocolError(f"frame of {length} bytes is over the limit of {max_bytes}")
    body = recv_exact(sock, length) if length else b""
    if body is None:
        raise ProtocolError("connection closed in the middle of a frame")
    return body


def _decode(header, sock, max_bytes):
    body = _body(header, sock, max_bytes)
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"malformed message: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message


def recv(sock, max_bytes=MAX_FRAME_BYTES):
    """Reads one message; None on a clean EOF between frames."""
    header = recv_exact(sock, _HEADER)
    if header is None:
        return None
    return _decode(header, sock, max_bytes)


def recv_with_fds(sock, maxfds=1, max_bytes=MAX_FRAME_BYTES):
    """Reads one message and the descriptors sent with its first byte.

    Returns (message or None at EOF, [fds]). The caller owns the fds, also
    when this raises after receiving them (they are closed here then).
    """
    data, fds, flags, _addr = socket.recv_fds(sock, _HEADER, maxfds)
    try:
        if flags & getattr(socket, "MSG_CTRUNC", 0):
            raise ProtocolError("more file descriptors than expected")
        if not data:
            return None, fds
        header = recv_exact(sock, _HEADER, first=data)
        return _decode(header, sock, max_bytes), fds
    except BaseException:
        for fd in fds:
            _close_quietly(fd)
        raise


def _close_quietly(fd):
    try:
        os.close(fd)
    except OSError:
        pass


class Channel:
    """The child's socket to its worker, shared by all threads.

    One lock serialises whole exchanges: a request and its reply are never
    interleaved with another thread's frames, so 16 threads importing at
    once each get their own answer. It is re-entrant so that output written
    while a thread holds it (e.g. by a signal handler) cannot deadlock.

    Only the execution's process may use it: a process the workflow forks
    shares the socket but not the conversation (and may have inherited the
    lock in a held state), so it is refused before the lock is touched.
    """

    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.RLock()
        self.pid = os.getpid()
        self._broken = None

    def is_ours(self):
        """False in a process forked from the execution's process."""
        return os.getpid() == self.pid

    def recv(self):
        """Reads one message (only before any request: the `run` frame)."""
        self._check_owner()
        with self.lock:
            return recv(self.sock)

    def recv_raw(self):
        """Reads one blob frame (right after `run`, when it announces one)."""
        self._check_owner()
        with self.lock:
            return recv_raw(self.sock)

    def send(self, message):
        """Sends a message that has no reply (`log`, `result`)."""
        self.send_frame(encode(message))

    def send_frame(self, frame):
        """Sends an already encoded frame.

        Allowed after a failed request too: the worker reads frames in
        order, so a `result` still reaches it; only replies are out of step.
        """
        self._check_owner()
        with self.lock:
            self.sock.sendall(frame)

    def request(self, message):
        """Sends a request and returns its reply (a dict)."""
        frame = encode(message)
        self._check_owner()
        with self.lock:
            self._check_in_step()
            try:
                self.sock.sendall(frame)
                reply = recv(self.sock)
            except BaseException as exc:
                # A reply may still be in flight: the stream is out of step.
                self._broken = exc
                raise
            if reply is None:
                self._broken = ProtocolError("the worker closed the socket")
                raise self._broken
            return reply

    def _check_owner(self):
        if not self.is_ours():
            raise ForeignProcessError(
                "the worker's socket belongs to the execution's process; "
                "a process forked from it cannot use it")

    def _check_in_step(self):
        if self._broken is not None:
            raise ProtocolError(f"socket unusable after an earlier error: {self._broken!r}")
