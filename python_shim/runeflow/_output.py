"""Captured output: stdout, stderr and logging become `log` frames.

All three feed one ordered buffer, so the worker sees them interleaved as
they were written. The buffer is sent when it reaches 4 KiB, when 200 ms
have passed since the last send (checked by the writes themselves: no timer
thread to fork or to leave behind), on an explicit flush, and at the end.
After ``max_log_bytes`` the child sends one truncation line and drops the
rest; the worker applies the same budget.
"""

import codecs
import io
import logging
import os
import sys
import time

TRUNCATION_NOTE = "\n[runeflow: output truncated]\n"
FLUSH_BYTES = 4096
FLUSH_SECONDS = 0.2
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class LogStream:
    """The shared, ordered output buffer of one execution."""

    def __init__(self, channel, max_bytes, *, flush_bytes=FLUSH_BYTES,
                 flush_seconds=FLUSH_SECONDS, clock=time.monotonic):
        self._flush_bytes = flush_bytes
        self._flush_seconds = flush_seconds
        self._clock = clock
        self.bind(channel, max_bytes)

    def bind(self, channel, max_bytes):
        """Starts the stream on `channel`: empty buffer, full budget.

        The zygote builds the stream unbound (channel None, see prepare());
        each child binds its own copy once.
        """
        self._channel = channel
        self._lock = None if channel is None else channel.lock  # one lock: frames and buffer stay in order
        self._max_bytes = max_bytes
        self._parts = []
        self._pending = 0
        self._sent = 0
        self._last_send = self._clock()
        self.truncated = False
        self.closed = False

    def write(self, text):
        """Buffers `text`; sends when the buffer is big or old enough."""
        if not text:
            return
        if not self._channel.is_ours():  # a stale reference in a forked process
            os.write(2, text.encode("utf-8", "backslashreplace"))
            return
        with self._lock:
            if self.closed or self.truncated:
                return
            self._parts.append(text)
            self._pending += len(text)
            if (self._pending >= self._flush_bytes
                    or self._clock() - self._last_send >= self._flush_seconds):
                self._send_locked()

    def flush(self):
        """Sends what is buffered now."""
        if not self._channel.is_ours():
            return
        with self._lock:
            if not self.closed:
                self._send_locked()

    def close(self):
        """Final flush; later writes (e.g. from lingering threads) are dropped."""
        with self._lock:
            if not self.closed:
                self._send_locked()
                self.closed = True

    def _send_locked(self):
        self._last_send = self._clock()
        if not self._parts:
            return
        text = "".join(self._parts)
        self._parts.clear()
        self._pending = 0
        if self.truncated:
            return
        data = text.encode("utf-8", "backslashreplace")  # lone surrogates too
        room = max(self._max_bytes - self._sent, 0)
        if len(data) > room:
            data = data[:room]
            self.truncated = True
        self._sent += len(data)
        text = data.decode("utf-8", "ignore")  # a cut may split a character
        if self.truncated:
            text += TRUNCATION_NOTE
        self._channel.send({"op": "log", "text": text})


class _Sink(io.RawIOBase):
    """Binary end of a captured stdout/stderr: decodes into the LogStream."""

    def __init__(self, stream, name):
        super().__init__()
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.name = name

    def writable(self):
        return True

    def write(self, data):
        self._stream.write(self._decoder.decode(bytes(data)))
        return len(data)

    def flush(self):
        if not self.closed:
            self._stream.flush()

    def isatty(self):
        return False


def _text_stream(stream, name):
    return io.TextIOWrapper(_Sink(stream, name), encoding="utf-8",
                            errors="backslashreplace", write_through=True)


class LogStreamHandler(logging.Handler):
    """Root logger handler writing formatted records to the LogStream.

    Unlike StreamHandler it does not flush per record, so a busy logger
    costs one frame per 4 KiB, not one per line.
    """

    def __init__(self, stream):
        super().__init__()
        self._stream = stream
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record):
        try:
            self._stream.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


#: (stream, stdout, stderr, handler), built once by prepare().
_prepared = None


def prepare():
    """Builds the capture objects (unbound) and sets the logger level.

    The zygote calls this before forking, so a child only binds the stream
    and swaps references: building two text streams, a handler and its
    formatter, and setLevel (which clears the cache of every logger), in
    each child would touch and copy many of the zygote's memory pages.
    Nothing here is used in the zygote itself, so children get them fresh.
    """
    global _prepared
    if _prepared is None:
        stream = LogStream(None, 0)
        _prepared = (stream, _text_stream(stream, "<stdout>"),
                     _text_stream(stream, "<stderr>"), LogStreamHandler(stream))
        logging.getLogger("runeflow.execution").setLevel(logging.INFO)
    return _prepared


def install(channel, max_bytes):
    """Captures sys.stdout, sys.stderr and logging; returns the LogStream.

    The root logger keeps its default level (WARNING); the
    ``runeflow.execution`` logger behind ``context.log`` logs from INFO.
    Once per process (a child runs one execution).
    """
    stream, stdout, stderr, handler = prepare()
    stream.bind(channel, max_bytes)
    sys.stdout, sys.stderr = stdout, stderr
    logging.getLogger().addHandler(handler)
    os.register_at_fork(after_in_child=_release_in_forked_child)
    return stream


def _release_in_forked_child():
    """A process the workflow forks writes to the inherited fds 1 and 2.

    Those are the zygote's pipes, which the worker logs as its own output;
    only the execution's process talks on the execution's socket.
    """
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, LogStreamHandler):
            root.removeHandler(handler)
