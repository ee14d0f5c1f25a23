"""python -m services.notification: run the notification service."""
from mesh.service import run
from services.notification.service import spec

if __name__ == "__main__":
    run(spec())
