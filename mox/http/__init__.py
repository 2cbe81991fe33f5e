"""HTTP: MTA-STS policies, client autoconfiguration, ACME http-01, and the web services."""
