"""A small demo data set, loaded through the public API so it is always valid.
Idempotent: loading it twice changes nothing (fixed request ids, identical creates)."""
from __future__ import annotations

from erp.inventory.v1 import inventory_pb2 as inv
from erp_client.client import ErpClient

WAREHOUSES = [("MAIN", "Main warehouse"), ("EAST", "East distribution centre")]
PRODUCTS = [
    ("CHAIR-OAK", "Oak chair", "EA", {"MAIN": 120, "EAST": 40}),
    ("DESK-150", "Desk 150 cm", "EA", {"MAIN": 35, "EAST": 10}),
    ("LAMP-LED", "LED desk lamp", "EA", {"MAIN": 300}),
    ("SCREWS-4MM", "Screws 4 mm, box of 100", "BOX", {"MAIN": 1000, "EAST": 500}),
    ("CABLE-CAT6", "Cat 6 cable, metre", "M", {"MAIN": 5000}),
]
# What one unit of the opening stock cost (EUR): the opening balances' unit cost, so stock is valued
# and shipments cost something from the start (moving weighted average cost from then on).
OPENING_COSTS = {"CHAIR-OAK": "38.00", "DESK-150": "142.50", "LAMP-LED": "9.80", "SCREWS-4MM": "2.35",
                 "CABLE-CAT6": "0.42"}
# (id, name, credit limit in EUR, email, payment terms in days)
CUSTOMERS = [
    ("CUST-1", "Acme Office Supplies GmbH", "50000.00", "purchasing@acme.example", 30),
    ("CUST-2", "Small Startup Ltd", "500.00", "founder@startup.example", 14),
]


# (id, name, email, payment terms in days)
SUPPLIERS = [
    ("SUP-WOOD", "Nordic Wood Works AB", "sales@nordicwood.example", 30),
    ("SUP-LIGHT", "Bright Lighting BV", "orders@brightlighting.example", 45),
]
# (supplier, sku, unit price in EUR, preferred, minimum quantity, lead time in days)
SUPPLIER_PRICES = [
    ("SUP-WOOD", "CHAIR-OAK", "41.50", True, 10, 14),
    ("SUP-WOOD", "DESK-150", "155.00", True, 2, 21),
    ("SUP-LIGHT", "LAMP-LED", "11.20", True, 50, 7),
]
# (sku, warehouse, reorder point, reorder quantity): a shortage raises a draft purchase order.
REORDER_POINTS = [("CHAIR-OAK", "MAIN", 100, 60), ("DESK-150", "MAIN", 10, 20), ("LAMP-LED", "MAIN", 50, 200)]


def load(erp: ErpClient) -> int:
    """Creates the warehouses, products, opening stock, customers, suppliers, their prices and the
    reorder points; returns the number of SKUs."""
    for code, name in WAREHOUSES:
        erp.create_warehouse(code, name)
    for sku, name, uom, stock in PRODUCTS:
        erp.create_product(sku, name, uom)
        for warehouse, quantity in stock.items():
            erp.inventory.AdjustStock(inv.AdjustStockRequest(
                request_id=f"demo-opening-{sku}-{warehouse}", sku=sku, warehouse_code=warehouse,
                quantity_delta=quantity, reason="demo opening stock", unit_cost=OPENING_COSTS[sku]),
                timeout=erp.timeout)
    for customer_id, name, limit, email, terms in CUSTOMERS:
        erp.create_customer(customer_id, name, limit, "EUR", email=email, payment_terms_days=terms)
    for supplier_id, name, email, terms in SUPPLIERS:
        erp.create_supplier(supplier_id, name, "EUR", email=email, payment_terms_days=terms)
    for supplier_id, sku, price, preferred, minimum, lead_time in SUPPLIER_PRICES:
        erp.set_supplier_price(supplier_id, sku, price, preferred=preferred, min_quantity=minimum,
                               lead_time_days=lead_time)
    for sku, warehouse, point, quantity in REORDER_POINTS:
        erp.set_reorder_point(sku, warehouse, point, quantity)
    return len(PRODUCTS)
