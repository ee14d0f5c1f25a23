"""python -m services.procurement: run the procurement service."""
from mesh.service import run
from services.procurement.service import spec

if __name__ == "__main__":
    run(spec())
