"""The shared runtime every ERP mesh service stands on. No business rules live here."""
