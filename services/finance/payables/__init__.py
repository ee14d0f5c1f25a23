"""The purchase side: the purchase orders finance knows, goods receipts, supplier bills
and their three-way match, bill payments and supplier performance."""
