"""python -m services.gateway: run the API gateway (gRPC and REST/JSON at the edge)."""
import asyncio

from mesh import logs, metrics, tracing
from mesh.settings import load
from services import PORTS
from services.gateway.service import NAME, serve

if __name__ == "__main__":
    settings = load(NAME, PORTS[NAME])
    logs.configure(NAME, settings.log_level, settings.log_format)
    metrics.serve(settings.metrics_port, settings.grpc_host)
    tracing.configure(NAME)
    try:
        asyncio.run(serve(settings))
    finally:
        tracing.shutdown()
