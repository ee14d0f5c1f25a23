"""The `erp` command line: call the mesh from a shell.

    erp stock get SKU WAREHOUSE
    erp stock adjust SKU WAREHOUSE DELTA --reason "cycle count"
    erp order place --customer CUST-1 --line SKU-1:2:9.99 [--line SKU:QTY:PRICE[@WAREHOUSE] ...] [--wait]
    erp order get ORDER_ID [--wait]
    erp order cancel ORDER_ID --reason "..."
    erp order ship ORDER_ID
    erp order timeline ORDER_ID        # every step across the services, and what is awaited
    erp demo            # one order from placement to payment, then procure to pay, each service's view
    erp report valuation|sales|payables-aging|receivables-aging [...] [--output table|json|csv]
    erp health          # every service and the gateway
    erp deadletters list|show|replay|discard SERVICE [EVENT_ID | --all]   # needs the server package
    erp reconcile [CHECK ...] [--dry-run]   # projections against their sources; needs the server package
    erp trace ORDER_ID | TRACE_ID [--sql]   # a local mesh's trace as a tree with timings (`make run` records them)

Every call command takes --output json|table and the connection options (before or after the command):
--target HOST:PORT (a gateway, for every service), --tls [--ca-file PEM], and a token: --token,
--token-file, or --token-url with --client-id and --client-secret-file (OAuth2 client credentials,
refreshed before expiry); the environment gives the same (ERP_TARGET, ERP_<SERVICE>_TARGET, ERP_TLS,
ERP_TLS_CA_FILE, ERP_TOKEN, ERP_TOKEN_FILE, ERP_TOKEN_URL, ERP_CLIENT_ID, ERP_CLIENT_SECRET(_FILE),
ERP_TOKEN_SCOPES, ERP_TOKEN_AUDIENCE).
"""
from __future__ import annotations

import argparse
import json
import sys

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from erp.orders.v1 import orders_pb2 as ord_pb
from erp_client import reports, timeline
from erp_client.auth import TokenError, token_from_env
from erp_client.client import ErpClient, Line

# Exit codes (also in `erp -h`).
OK, FAILED, USAGE, ORDER_NOT_CONFIRMED, WAIT_TIMED_OUT = 0, 1, 2, 3, 4
EXIT_CODES = (f"exit codes: {OK} done (an order waited for ended CONFIRMED or later); {FAILED} a call failed, "
              f"no token could be had, or `erp health` found something not SERVING; {USAGE} bad arguments; "
              f"{ORDER_NOT_CONFIRMED} --wait: the order ended REJECTED or CANCELLED; "
              f"{WAIT_TIMED_OUT} --wait: the order was still PENDING when --wait-timeout ran out")
NOT_CONFIRMED = frozenset({ord_pb.ORDER_STATUS_REJECTED, ord_pb.ORDER_STATUS_CANCELLED})


def as_dict(message: Message) -> dict:
    """proto3 JSON mapping with the proto's field names; enums by name, int64 as strings."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _flatten(value, prefix: str = ""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{i}]")
    elif isinstance(value, list):
        yield prefix, ", ".join(str(item) for item in value)
    else:
        yield prefix, str(value)


def table(rows: dict | list[tuple[str, str]]) -> str:
    """Two columns, field and value (nested fields as a.b, repeated ones as a[0].b)."""
    pairs = list(_flatten(rows)) if isinstance(rows, dict) else rows
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in pairs)


def emit(message: Message, output: str) -> None:
    data = as_dict(message)
    print(json.dumps(data, indent=2) if output == "json" else table(data))


def _line(text: str) -> Line:
    try:
        rest, _, warehouse = text.partition("@")
        sku, qty, price = rest.split(":")
        return Line(sku=sku, quantity=int(qty), unit_price=price, warehouse_code=warehouse)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SKU:QTY:PRICE[@WAREHOUSE]") from exc


def connection_options(default_output: str = "json") -> argparse.ArgumentParser:
    """Options every call command takes, before the command or after it (defaults suppressed, so one
    given before is not overwritten by the command's default)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--output", "-o", choices=("json", "table"), default=argparse.SUPPRESS,
                   help=f"json (proto3 JSON, enums by name) or table (default here: {default_output})")
    c = p.add_argument_group("connection (flags over the environment)")
    c.add_argument("--target", default=argparse.SUPPRESS,
                   help="HOST:PORT of a gateway, for every service (ERP_TARGET; else ERP_<SERVICE>_TARGET, "
                        "else make run's ports)")
    c.add_argument("--tls", action="store_true", default=argparse.SUPPRESS, help="TLS (ERP_TLS=1)")
    c.add_argument("--ca-file", default=argparse.SUPPRESS, help="PEM roots to trust for TLS (ERP_TLS_CA_FILE)")
    c.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help="deadline of each call, seconds")
    c.add_argument("--token", default=argparse.SUPPRESS,
                   help="bearer token (ERP_TOKEN; prefer --token-file: flags show in `ps`)")
    c.add_argument("--token-file", default=argparse.SUPPRESS, help="file holding the token, read again "
                   "when it changes (ERP_TOKEN_FILE)")
    c.add_argument("--token-url", default=argparse.SUPPRESS,
                   help="OAuth2 token endpoint for client credentials (ERP_TOKEN_URL)")
    c.add_argument("--client-id", default=argparse.SUPPRESS, help="ERP_CLIENT_ID")
    c.add_argument("--client-secret-file", default=argparse.SUPPRESS,
                   help="file holding the client secret (ERP_CLIENT_SECRET_FILE, or ERP_CLIENT_SECRET)")
    c.add_argument("--scope", action="append", default=argparse.SUPPRESS,
                   help="scope to ask for, repeatable (ERP_TOKEN_SCOPES, space separated)")
    c.add_argument("--audience", default=argparse.SUPPRESS, help="audience to ask for (ERP_TOKEN_AUDIENCE)")
    return p


def parser() -> argparse.ArgumentParser:
    common, tabled = connection_options(), connection_options("table")
    p = argparse.ArgumentParser(prog="erp", parents=[common], epilog=EXIT_CODES,
                                description="Call the ERP mesh, through its gateway (--target) or each service.")
    sub = p.add_subparsers(dest="area", required=True)
    stock = sub.add_parser("stock").add_subparsers(dest="action", required=True)
    get = stock.add_parser("get", help="stock of a SKU in a warehouse", parents=[common])
    get.add_argument("sku")
    get.add_argument("warehouse")
    adjust = stock.add_parser("adjust", help="add or remove stock with a reason", parents=[common])
    adjust.add_argument("sku")
    adjust.add_argument("warehouse")
    adjust.add_argument("delta", type=int)
    adjust.add_argument("--reason", required=True)
    order = sub.add_parser("order").add_subparsers(dest="action", required=True)
    wait_help = (f"wait until it leaves PENDING; exit {ORDER_NOT_CONFIRMED} if it ends REJECTED or CANCELLED, "
                 f"{WAIT_TIMED_OUT} if still PENDING after --wait-timeout")
    place = order.add_parser("place", help="place a sales order", parents=[common], epilog=EXIT_CODES)
    place.add_argument("--customer", required=True)
    place.add_argument("--currency", default="EUR")
    place.add_argument("--line", type=_line, action="append", required=True, help="SKU:QTY:PRICE[@WAREHOUSE]")
    place.add_argument("--wait", action="store_true", help=wait_help)
    place.add_argument("--wait-timeout", type=float, default=30.0, help="seconds (default 30)")
    show = order.add_parser("get", help="read an order", parents=[common], epilog=EXIT_CODES)
    show.add_argument("order_id")
    show.add_argument("--wait", action="store_true", help=wait_help)
    show.add_argument("--wait-timeout", type=float, default=30.0, help="seconds (default 30)")
    cancel = order.add_parser("cancel", help="cancel an order before shipment", parents=[common])
    cancel.add_argument("order_id")
    cancel.add_argument("--reason", required=True)
    ship = order.add_parser("ship", help="mark an order shipped", parents=[common])
    ship.add_argument("order_id")
    steps = order.add_parser("timeline", help="every step of an order across the services, and what it awaits",
                             parents=[tabled])
    steps.add_argument("order_id")
    sub.add_parser("demo", help="walk one order from placement to payment, then procure to pay", parents=[common])
    reports.add_parser(sub, connection_options)
    sub.add_parser("health", parents=[tabled], epilog=EXIT_CODES,
                   help=f"health of every service and the gateway, all of them even when some are down "
                        f"(exit {FAILED} when any is not SERVING)")
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


def client_from(args: argparse.Namespace) -> ErpClient:
    """ErpClient from the flags, over the environment."""
    given = vars(args)
    token = token_from_env(token=given.get("token"), token_file=given.get("token_file"),
                           token_url=given.get("token_url"), client_id=given.get("client_id"),
                           client_secret_file=given.get("client_secret_file"), scopes=given.get("scope"),
                           audience=given.get("audience"))
    return ErpClient.from_env(target=given.get("target"), tls=given.get("tls"), ca_file=given.get("ca_file"),
                              timeout=given.get("timeout"), token=token)


# `erp <command> ...` run by a tool of the server package (erp-mesh), which reads the services'
# databases and the broker: imported only when called, so the client alone needs no `mesh`.
SERVER_TOOLS = {"deadletters": "services.tools.deadletters", "reconcile": "services.tools.reconcile",
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


def wait(erp: ErpClient, order_id: str, timeout: float, output: str) -> int:
    try:
        order = erp.wait_for_order(order_id, timeout=timeout)
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        emit(erp.get_order(order_id), output)
        return WAIT_TIMED_OUT
    emit(order, output)
    if order.status in NOT_CONFIRMED:
        print(f"order {order.order_id} ended {ord_pb.OrderStatus.Name(order.status)}", file=sys.stderr)
        return ORDER_NOT_CONFIRMED
    return OK


def health(erp: ErpClient, output: str) -> int:
    statuses = erp.health_all()
    if output == "json":
        print(json.dumps(statuses, indent=2))
    else:
        width = max(map(len, statuses))
        for name, status in statuses.items():
            where = erp.gateway_target if name == "gateway" else erp.targets[name]
            print(f"{name:<{width}}  {status:<17} {where}")
    return OK if all(status == "SERVING" for status in statuses.values()) else FAILED


def run(erp: ErpClient, args: argparse.Namespace) -> int:
    output = getattr(args, "output", None) or ("table" if args.area == "health" or
                                               getattr(args, "action", "") == "timeline" else "json")
    if args.area == "stock" and args.action == "get":
        emit(erp.get_stock(args.sku, args.warehouse), output)
    elif args.area == "stock":
        emit(erp.adjust_stock(args.sku, args.warehouse, args.delta, args.reason), output)
    elif args.area == "order" and args.action == "place":
        order = erp.place_order(args.customer, args.line, args.currency)
        if args.wait:
            return wait(erp, order.order_id, args.wait_timeout, output)
        emit(order, output)
    elif args.area == "order" and args.action == "cancel":
        emit(erp.cancel_order(args.order_id, args.reason), output)
    elif args.area == "order" and args.action == "ship":
        emit(erp.mark_shipped(args.order_id), output)
    elif args.area == "order" and args.action == "timeline" and output == "json":
        emit(erp.order_timeline(args.order_id), output)
    elif args.area == "order" and args.action == "timeline":
        print(timeline.render(erp.order_timeline(args.order_id)))
    elif args.area == "order":
        if args.wait:
            return wait(erp, args.order_id, args.wait_timeout, output)
        emit(erp.get_order(args.order_id), output)
    elif args.area == "report":
        return reports.run(erp, args, getattr(args, "output", None) or "table")
    elif args.area == "demo":
        from erp_client import walkthrough

        walkthrough.run(erp)
        walkthrough.procure_to_pay(erp)
        reports.demo(erp)
    else:
        return health(erp, output)
    return OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in SERVER_TOOLS:
        return server_tool(argv[0], argv[1:])
    args = parser().parse_args(argv)
    try:
        with client_from(args) as erp:
            return run(erp, args)
    except grpc.RpcError as err:
        print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
        return FAILED
    except (TokenError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
