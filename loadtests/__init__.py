"""Load tests and benchmarks of the ERP mesh."""
