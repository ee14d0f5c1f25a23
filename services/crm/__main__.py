"""python -m services.crm: run the crm service."""
from mesh.service import run
from services.crm.service import spec

if __name__ == "__main__":
    run(spec())
