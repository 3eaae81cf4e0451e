"""Issuing barcodes to a paid application: the pool, client credentials, sealed secrets."""
