"""The security headers every HTTP response carries (`security.add_security_headers` adds
them; `errors.JsonErrorProtocol` to the answers that never reach the application)."""

from __future__ import annotations

# The bundled demo (collab/web/static) loads its script and stylesheet from /assets and talks
# to this origin only (fetch and WebSocket: CSP 3 lets 'self' match ws:/wss: of the same
# host). Styles need 'unsafe-inline': Tiptap injects a <style> element and the demo sets
# style attributes (avatar and cursor colours); scripts stay strictly 'self'.
DEMO_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# JSON, binary updates and errors are never rendered as documents.
API_CSP = "default-src 'none'; frame-ancestors 'none'"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
