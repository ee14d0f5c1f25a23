"""python -m services.inventory: run the inventory service."""
from mesh.service import run
from services.inventory.service import spec

if __name__ == "__main__":
    run(spec())
