"""Observability leaves: counters the per-message paths add to (`counters`) and the logging
setup with request and connection ids (`logging`). They import nothing of collab's, so every
layer may use them; what reads them for `/metrics`, and the HTTP middleware, live in the web
layer (`collab.web.http.metrics`, `collab.web.http.observability`, `collab.web.http.rejections`)."""
