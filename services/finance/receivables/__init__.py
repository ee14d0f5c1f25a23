"""The sales side: invoices, customer payments, credit notes and the receivables aging."""
