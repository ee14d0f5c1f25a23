"""What receivables and payables share: the chart of accounts, the double-entry journal,
document numbering, the configuration, rounding, accounting periods and aging."""
