"""The `erp` command line: call the mesh from a shell.

    erp stock get SKU WAREHOUSE
    erp stock adjust SKU WAREHOUSE DELTA --reason "cycle count"
    erp order place --customer CUST-1 --line SKU-1:2:9.99 [--line SKU:QTY:PRICE[@WAREHOUSE] ...]
    erp order get ORDER_ID [--wait]
    erp order cancel ORDER_ID --reason "..."
    erp order ship ORDER_ID
    erp order timeline ORDER_ID [--output table|json]   # every step across the services, and what is awaited
    erp demo            # one order from placement to payment, then procure to pay, each service's view
    erp health
    erp deadletters list|show|replay|discard SERVICE [EVENT_ID | --all]   # needs the server package
    erp reconcile [CHECK ...] [--dry-run]   # projections against their sources; needs the server package
    erp trace ORDER_ID | TRACE_ID [--sql]   # a local mesh's trace as a tree with timings (`make run` records them)
"""
from __future__ import annotations

import argparse
import sys

import grpc
from google.protobuf import json_format

from erp_client import timeline
from erp_client.client import ErpClient, Line


def _print(message) -> None:
    print(json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2))


def _line(text: str) -> Line:
    try:
        rest, _, warehouse = text.partition("@")
        sku, qty, price = rest.split(":")
        return Line(sku=sku, quantity=int(qty), unit_price=price, warehouse_code=warehouse)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SKU:QTY:PRICE[@WAREHOUSE]") from exc


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="erp", description="Call the ERP mesh (targets from ERP_*_TARGET).")
    sub = p.add_subparsers(dest="area", required=True)
    stock = sub.add_parser("stock").add_subparsers(dest="action", required=True)
    get = stock.add_parser("get", help="stock of a SKU in a warehouse")
    get.add_argument("sku")
    get.add_argument("warehouse")
    adjust = stock.add_parser("adjust", help="add or remove stock with a reason")
    adjust.add_argument("sku")
    adjust.add_argument("warehouse")
    adjust.add_argument("delta", type=int)
    adjust.add_argument("--reason", required=True)
    order = sub.add_parser("order").add_subparsers(dest="action", required=True)
    place = order.add_parser("place", help="place a sales order")
    place.add_argument("--customer", required=True)
    place.add_argument("--currency", default="EUR")
    place.add_argument("--line", type=_line, action="append", required=True, help="SKU:QTY:PRICE[@WAREHOUSE]")
    place.add_argument("--wait", action="store_true", help="wait until it is confirmed or rejected")
    show = order.add_parser("get", help="read an order")
    show.add_argument("order_id")
    show.add_argument("--wait", action="store_true", help="wait until it is confirmed or rejected")
    cancel = order.add_parser("cancel", help="cancel an order before shipment")
    cancel.add_argument("order_id")
    cancel.add_argument("--reason", required=True)
    ship = order.add_parser("ship", help="mark an order shipped")
    ship.add_argument("order_id")
    steps = order.add_parser("timeline", help="every step of an order across the services, and what it awaits")
    steps.add_argument("order_id")
    steps.add_argument("--output", choices=("table", "json"), default="table")
    sub.add_parser("demo", help="walk one order from placement to payment, then procure to pay")
    sub.add_parser("health", help="health of every service")
    letters = sub.add_parser("deadletters", add_help=False,
                             help="list|show|replay|discard SERVICE [EVENT_ID | --all]: a service's dead letters "
                                  "and parked events (needs the server package; `erp deadletters -h`)")
    letters.add_argument("rest", nargs=argparse.REMAINDER)
    checks = sub.add_parser("reconcile", add_help=False,
                            help="[CHECK ...] [--dry-run]: compare projections with their sources, repair what is "
                                 "unambiguous, exit 1 on drift (needs the server package; `erp reconcile -h`)")
    checks.add_argument("rest", nargs=argparse.REMAINDER)
    traces = sub.add_parser("trace", add_help=False,
                            help="ORDER_ID | TRACE_ID [--sql]: the trace of an order or trace id as a tree with "
                                 "timings, from a local mesh's span files (needs the server package; `erp trace -h`)")
    traces.add_argument("rest", nargs=argparse.REMAINDER)
    return p


# `erp <command> ...` run by a tool of the server package (erp-mesh), which reads the services'
# databases and the broker: imported only when called, so the client alone needs no `mesh`.
SERVER_TOOLS = {"deadletters": "mesh.tools.deadletters", "reconcile": "mesh.tools.reconcile",
                "trace": "mesh.tools.traces"}


def server_tool(command: str, argv: list[str]) -> int:
    import importlib

    try:
        tool = importlib.import_module(SERVER_TOOLS[command])
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("mesh", "services"):
            raise
        print(f"error: `erp {command}` needs the server package (erp-mesh, the project's `make install`), "
              f"which is not installed here ({exc})", file=sys.stderr)
        return 1
    return tool.main(argv, prog=f"erp {command}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in SERVER_TOOLS:
        return server_tool(argv[0], argv[1:])
    args = parser().parse_args(argv)
    try:
        with ErpClient.from_env() as erp:
            if args.area == "stock" and args.action == "get":
                _print(erp.get_stock(args.sku, args.warehouse))
            elif args.area == "stock":
                _print(erp.adjust_stock(args.sku, args.warehouse, args.delta, args.reason))
            elif args.area == "order" and args.action == "place":
                order = erp.place_order(args.customer, args.line, args.currency)
                _print(erp.wait_for_order(order.order_id) if args.wait else order)
            elif args.area == "order" and args.action == "cancel":
                _print(erp.cancel_order(args.order_id, args.reason))
            elif args.area == "order" and args.action == "ship":
                _print(erp.mark_shipped(args.order_id))
            elif args.area == "order" and args.action == "timeline" and args.output == "json":
                _print(erp.order_timeline(args.order_id))
            elif args.area == "order" and args.action == "timeline":
                print(timeline.render(erp.order_timeline(args.order_id)))
            elif args.area == "order":
                _print(erp.wait_for_order(args.order_id) if args.wait else erp.get_order(args.order_id))
            elif args.area == "demo":
                from erp_client import walkthrough

                walkthrough.run(erp)
                walkthrough.procure_to_pay(erp)
            else:
                for service in erp.SERVICES:
                    print(f"{service}: {erp.health(service)}")
    except grpc.RpcError as err:
        print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
