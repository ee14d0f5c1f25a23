"""python -m services.orders: run the orders service."""
from mesh.service import run
from services.orders.service import spec

if __name__ == "__main__":
    run(spec())
