"""Structured logging: one JSON object per line, stamped with the call's ids and trace id."""
from __future__ import annotations

import json
import logging
import sys
import time

from mesh import call_context, tracing


def _ids() -> dict[str, str]:
    """The ids of the call or event being handled: request, correlation, and the trace's."""
    ids = {key: value for key, var in (("request_id", call_context.request_id), ("correlation_id", call_context.correlation_id))
           if (value := var.get())}
    if tracing.enabled() and (trace_id := tracing.trace_id()):
        ids["trace_id"] = trace_id
    return ids


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_ids())
        extra = getattr(record, "fields", None)
        if extra:
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`make run`'s lines: readable, and still carrying the call's ids, so that one request can be
    followed across the services' output (grep for its request or correlation id)."""

    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{key}={value}" for key, value in _ids().items())
        if not ids:
            return line
        first, newline, rest = line.partition("\n")  # after the message, before a traceback
        return f"{first} [{ids}]{newline}{rest}"


def configure(service: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("pika", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pika logs every failed connection attempt at ERROR, with tracebacks, several lines per try: during
    # a broker outage that buries everything else. The relay and consumers say it once, in one line.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
