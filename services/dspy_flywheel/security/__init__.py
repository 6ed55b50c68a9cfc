"""Encryption at rest and keyed hashing for stored training data (``crypto``); TLS contexts and
start-up errors for the connections that carry it (``tls``, ``errors``)."""
