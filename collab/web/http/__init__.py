"""HTTP plumbing shared by every endpoint: middleware (JSON errors, security headers and CORS,
request ids and metrics, connection counting, request limits, JWKS refetch), what handlers read
from a request, and the access log."""
