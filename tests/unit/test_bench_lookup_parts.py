"""The split of GetStock's distance to the echo (loadtests/lookup_parts.py) and how the bench prints it."""
from __future__ import annotations

import pytest

from loadtests import lookup_parts
from loadtests.bench import _call_us


def test_getstocks_cpu_beyond_the_echos_splits_into_the_three_parts():
    call_us = {"echo": 130.4, "bare": 131.0, "wrapped": 151.2, "lookup": 157.0}
    parts = lookup_parts.split(call_us)
    assert parts.grpc_method == pytest.approx(0.6)
    assert parts.mesh_wrap == pytest.approx(20.2)
    assert parts.handler == pytest.approx(5.8)
    assert parts.total == pytest.approx(157.0 - 130.4)
    text = "\n".join(lookup_parts.lines(call_us))
    assert "echo 130 µs, GetStock 157 µs, +27 of which grpc's protobuf method +1, the mesh's per-call wrap +20, " \
           "GetStock's own handler +6" in text


def test_a_part_measured_cheaper_than_the_one_before_it_reads_negative_not_hidden():
    parts = lookup_parts.split({"echo": 130.0, "bare": 128.0, "wrapped": 150.0, "lookup": 149.0})
    assert parts.grpc_method == pytest.approx(-2.0)
    assert parts.handler == pytest.approx(-1.0)


def test_a_row_not_read_is_said_not_split():
    assert lookup_parts.split({"echo": 130.0, "bare": None, "wrapped": 150.0, "lookup": 149.0}) is None
    assert "not read" in lookup_parts.lines({"echo": 130.0})[0]


def test_a_rows_server_cpu_per_call_is_its_cores_over_its_rate():
    assert _call_us({"rps": 5000.0, "cpu": {"srv": 0.9}}) == pytest.approx(180.0)
    assert _call_us({"rps": 0.0, "cpu": {"srv": 0.9}}) is None
    assert _call_us({"rps": 10.0}) is None


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_stand_in_answers_getstock_with_the_constant_bare_or_behind_the_wrap(wrapped):
    import multiprocessing

    import grpc

    from erp.inventory.v1 import inventory_pb2 as inv
    from erp.inventory.v1 import inventory_pb2_grpc
    from loadtests.bench import wait_serving_raw
    from loadtests.localmesh import free_ports

    port = free_ports(1)[0]
    server = multiprocessing.get_context("spawn").Process(target=lookup_parts.serve, args=(port, wrapped), daemon=True)
    server.start()
    try:
        wait_serving_raw(f"127.0.0.1:{port}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer, call = inventory_pb2_grpc.InventoryServiceStub(channel).GetStock.with_call(
                inv.GetStockRequest(sku="ANY", warehouse_code="MAIN"), timeout=10)
        assert answer.stock.sku == lookup_parts.ANSWER["sku"]
        assert answer.stock.available == lookup_parts.ANSWER["available"]
        trailers = dict(call.trailing_metadata() or ())
        assert ("x-request-id" in trailers) is wrapped  # the mesh's wrap answers with the call's id
    finally:
        server.kill()
        server.join(5)
