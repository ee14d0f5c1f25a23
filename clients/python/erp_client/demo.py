"""A small demo data set, loaded through the public API so it is always valid.
Idempotent: loading it twice changes nothing (fixed request ids, identical creates)."""
from __future__ import annotations

from erp_client.client import ErpClient

WAREHOUSES = [("MAIN", "Main warehouse"), ("EAST", "East distribution centre")]
PRODUCTS = [
    ("CHAIR-OAK", "Oak chair", "EA", {"MAIN": 120, "EAST": 40}),
    ("DESK-150", "Desk 150 cm", "EA", {"MAIN": 35, "EAST": 10}),
    ("LAMP-LED", "LED desk lamp", "EA", {"MAIN": 300}),
    ("SCREWS-4MM", "Screws 4 mm, box of 100", "BOX", {"MAIN": 1000, "EAST": 500}),
    ("CABLE-CAT6", "Cat 6 cable, metre", "M", {"MAIN": 5000}),
]
# (id, name, credit limit in EUR, email, payment terms in days)
CUSTOMERS = [
    ("CUST-1", "Acme Office Supplies GmbH", "50000.00", "purchasing@acme.example", 30),
    ("CUST-2", "Small Startup Ltd", "500.00", "founder@startup.example", 14),
]


def load(erp: ErpClient) -> int:
    """Creates the warehouses, products, opening stock and customers; returns the number of SKUs."""
    for code, name in WAREHOUSES:
        erp.create_warehouse(code, name)
    for sku, name, uom, stock in PRODUCTS:
        erp.create_product(sku, name, uom)
        for warehouse, quantity in stock.items():
            erp.adjust_stock(sku, warehouse, quantity, reason="demo opening stock",
                             request_id=f"demo-opening-{sku}-{warehouse}")
    for customer_id, name, limit, email, terms in CUSTOMERS:
        erp.create_customer(customer_id, name, limit, "EUR", email=email, payment_terms_days=terms)
    return len(PRODUCTS)
