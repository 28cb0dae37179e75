"""Runeflow SDK: mark workflows and data providers, read the running context.

    from runeflow import workflow, context

    @workflow(name="hello", timeout=30)
    def hello(who: str = "world") -> dict:
        context.log.info("greeting %s", who)
        return {"greeting": f"hello {who}", "execution": context.execution_id}

The decorators only tag the function (``func.__runeflow__``) and return it
unchanged, so it stays an ordinary callable: tests can call it, and
``inspect.getsource`` still shows the real code. The worker finds workflows
by parsing the source, not by importing it.

This package imports nothing heavy and works the same on a plain disk
interpreter (with ``python_shim`` on ``sys.path``), where ``context`` simply
stays unbound (``execution_id`` None, no parameters).
"""

import logging

__all__ = ["workflow", "data_provider", "context", "Context", "Config"]
__version__ = "0.1.0"

#: Name of the logger behind ``context.log``; its records are captured.
EXECUTION_LOGGER = "runeflow.execution"


def _tag(kind, func, name, description, settings):
    """Returns `func` (or a decorator for it) tagged as a `kind` entry point."""
    if isinstance(func, str):  # @workflow("name")
        func, name = None, func

    def apply(target):
        if not callable(target):
            raise TypeError(f"@{kind} decorates a function, not {type(target).__name__}")
        target.__runeflow__ = {
            "kind": kind,
            "name": name or target.__name__,
            "description": description,
            **settings,
        }
        return target

    return apply if func is None else apply(func)


def workflow(
    func=None,
    /,
    *,
    name=None,
    description=None,
    timeout=None,
    schedule=None,
    timezone=None,
    catch_up=None,
    retries=None,
    retry_backoff=None,
    retry_on=None,
    endpoint=None,
    max_concurrency=None,
    timeout_seconds=None,
    endpoint_enabled=None,
):
    """Marks a function as a workflow; use as ``@workflow`` or ``@workflow(...)``.

    The settings are read from the source by the server, so they must be
    literals: ``schedule`` (cron, 5 fields or 6 with seconds) with
    ``timezone`` (IANA name, default UTC) and ``catch_up`` (default True);
    ``retries``, ``retry_backoff`` (seconds) and ``retry_on`` (exception class
    names as strings); ``endpoint``; ``max_concurrency``; ``timeout``
    (seconds). ``timeout_seconds`` and ``endpoint_enabled`` are accepted as
    Bifrost's spellings.
    """
    settings = {
        "timeout": timeout if timeout is not None else timeout_seconds,
        "schedule": schedule,
        "timezone": timezone,
        "catch_up": catch_up,
        "retries": retries,
        "retry_backoff": retry_backoff,
        "retry_on": retry_on,
        "endpoint": endpoint if endpoint is not None else endpoint_enabled,
        "max_concurrency": max_concurrency,
    }
    return _tag("workflow", func, name, description, settings)


def data_provider(
    func=None,
    /,
    *,
    name=None,
    description=None,
    timeout=None,
    cache_ttl=None,
    timeout_seconds=None,
    cache_ttl_seconds=None,
):
    """Marks a function as a data provider; same forms as :func:`workflow`.

    ``cache_ttl`` (seconds, default 300; Bifrost's ``cache_ttl_seconds``) is
    how long its options stay cached.
    """
    settings = {
        "timeout": timeout if timeout is not None else timeout_seconds,
        "cache_ttl": cache_ttl if cache_ttl is not None else cache_ttl_seconds,
    }
    return _tag("data_provider", func, name, description, settings)


class Context:
    """What a workflow may know about the execution running it.

    There is one instance, ``runeflow.context``. The runner binds it in the
    forked child before the workflow module is imported, so it is valid at
    import time and during the call; each execution has its own process, so
    nothing leaks from one execution to the next.
    """

    def __init__(self):
        self.execution_id = None
        self.parameters = {}
        self.log = logging.getLogger(EXECUTION_LOGGER)
        self._channel = None
        #: Plain config entries: ``context.config["API_URL"]``.
        self.config = Config(self)

    def _bind(self, execution_id, parameters, channel=None):
        """Called by the runner only."""
        self.execution_id = execution_id
        self.parameters = dict(parameters)
        self._channel = channel

    def secret(self, key):
        """The value of secret `key` (a string), read from the worker now.

        Raises ``KeyError`` naming `key` when there is no such secret.
        Wherever the value shows up in this execution's logs, result or
        error, it is stored as ``***``.
        """
        reply = self._ask("secret", key)
        if reply.get("found"):
            return reply["value"]
        if reply.get("secret") is False:
            raise KeyError(f"{key!r} is a config entry, not a secret: read it with context.config[{key!r}]")
        raise KeyError(key)

    def _ask(self, op, key):
        if not isinstance(key, str):
            raise TypeError(f"config keys are strings, not {type(key).__name__}")
        if self._channel is None:
            raise RuntimeError("runeflow.context reads config only inside an execution")
        reply = self._channel.request({"op": op, "key": key})
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def __repr__(self):
        return f"<runeflow.Context execution_id={self.execution_id!r}>"


class Config:
    """``context.config``: the plain config entries, read from the worker
    on each lookup (nothing is cached, so a value changed while the
    execution runs is seen by the next lookup)."""

    def __init__(self, context):
        self._context = context

    def __getitem__(self, key):
        reply = self._context._ask("config", key)
        if reply.get("found"):
            return reply["value"]
        if reply.get("secret"):
            raise KeyError(f"{key!r} is a secret: read it with context.secret({key!r})")
        raise KeyError(key)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key):
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __repr__(self):
        return "<runeflow.context.config>"


#: The running execution's context (unbound outside an execution).
context = Context()
