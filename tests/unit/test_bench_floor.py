"""The floor's shape and report (loadtests/floor.py) on made-up figures. No I/O."""
from __future__ import annotations

import pytest

from loadtests.floor import ORDER, Floor, Part, Shape, budget_ms, per_order_ms


def test_an_orders_shape_is_the_counted_one():
    assert (ORDER.transactions, ORDER.statements, ORDER.rows_inserted, ORDER.rows_updated) == (4, 16, 48, 16)
    keys = ORDER.routing_keys()
    assert len(keys) == ORDER.publishes == 5
    assert keys.count("both") * 2 + keys.count("one") == ORDER.deliveries == 9


@pytest.mark.parametrize("publishes, deliveries", [(5, 4), (5, 11)])
def test_a_shape_whose_events_cannot_reach_one_or_two_queues_is_refused(publishes, deliveries):
    with pytest.raises(ValueError, match="one or two queues"):
        Shape(publishes=publishes, deliveries=deliveries)


def test_the_floor_sums_its_parts_and_the_echo():
    floor = Floor(Part(1.5, 1.75), Part(0.35, 0.5), Part(0.2, 0.2), echo_ms=0.2)
    assert floor.total_ms == pytest.approx(4.7)
    lines = floor.lines(order_ms=9.4)
    assert lines[0].startswith("SQL    4 transactions, 16 statements inserting 48 rows and updating 16: 3.25 ms")
    assert "5 events published in transactions of 4: 0.85 ms" in lines[1]
    assert "9 deliveries acked 8 at once: 0.40 ms" in lines[1]
    assert lines[2] == "gRPC   the placement's call, the echo's server CPU: 0.20 ms"
    assert lines[-1] == "floor  4.70 ms = 50% of the order's 9.40 ms"


def test_without_rabbitmq_the_floor_says_what_it_left_out():
    lines = Floor(Part(1.0, 1.0), None, None, echo_ms=None).lines(None)
    assert lines[1].startswith("AMQP   not measured: no RabbitMQ")
    assert lines[-1] == "floor  2.00 ms"


def test_the_budget_is_the_machines_cpu_per_order_at_the_target_rate():
    assert budget_ms(5000.0, cores=2) == pytest.approx(8.0)  # 250 orders/s on 2 cores
    assert budget_ms(None, cores=2) is None
    assert per_order_ms(0.3, 100) == pytest.approx(3.0) and per_order_ms(1.0, 0) == 0.0
