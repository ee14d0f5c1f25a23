"""The chart's default Locust file (`loadtest.file: locustfile.py`): the realistic mix (loadtests/mix.py).

Other suites: set `loadtest.file` to inventory_lookup.py, order_throughput.py or mix.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.mix import MixUser  # noqa: E402, F401  (Locust runs every User class in this module)
