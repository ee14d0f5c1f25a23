"""python -m services.finance: run the finance service."""
from mesh.service import run
from services.finance.service import spec

if __name__ == "__main__":
    run(spec())
