"""TLS material: keystores, trust, SSL contexts and their diagnoses."""

from flowrun._tls._dsa import ignore_dsa_deprecation

ignore_dsa_deprecation()
