"""Money: amounts, invoices, payments and matching bank statement lines to invoices."""
