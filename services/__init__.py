"""The domain services. Each has the same inner shape (see README, "How it is built")."""

# The services `make run` starts and `make migrate` migrates, in start order.
RUNNABLE = ("inventory", "orders", "crm", "finance", "procurement", "notification")
# The edge: the API gateway (no database, no events). `make run` starts it after the services.
EDGE = ("gateway",)
# Each one's gRPC port when ERP_GRPC_PORT is not set (make run; the chart's values.yaml agrees).
PORTS = {"gateway": 50050, "inventory": 50051, "orders": 50052, "crm": 50053, "finance": 50054,
         "procurement": 50055, "notification": 50056}


def local_targets(host: str = "127.0.0.1", ports: dict[str, int] | None = None) -> dict[str, str]:
    """{service: host:port} of a mesh on one machine: what make run sets as ERP_<SERVICE>_TARGET."""
    return {name: f"{host}:{port}" for name, port in (ports or PORTS).items()}
