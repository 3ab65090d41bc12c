"""The SOAP executor against the Ledger partner service over mutual TLS."""
