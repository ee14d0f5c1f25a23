"""Is an engine there? One quick connection attempt each, so the tests and the load tests can
choose between external and embedded engines. No retries: an answer within about a second."""
from __future__ import annotations

import socket
from urllib.parse import urlparse

import pika
import psycopg
import redis

from mesh.service import libpq_dsn


def tcp_open(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def pg_reachable(url: str) -> bool:
    if not tcp_open(url, 5432):
        return False
    try:
        psycopg.connect(libpq_dsn(url), connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


def redis_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def amqp_reachable(url: str) -> bool:
    if not tcp_open(url, 5672):
        return False
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False
