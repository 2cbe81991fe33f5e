"""Automatic TLS: certificates from an ACME provider (RFC 8555), tls-alpn-01 (RFC 8737) and http-01."""
