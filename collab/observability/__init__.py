"""Observability: Prometheus metrics at `/metrics`, request and connection ids, JSON logs."""
