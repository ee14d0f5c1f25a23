"""The domain services. Each has the same inner shape (see README, "How it is built")."""

# The services `make run` starts and `make migrate` migrates, in start order.
RUNNABLE = ("inventory", "orders", "crm", "finance", "procurement", "notification")
# The edge: the API gateway (no database, no events). `make run` starts it after the services.
EDGE = ("gateway",)
