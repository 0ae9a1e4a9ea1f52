"""The REST API, one module per resource: documents, notifications, presence, revocations
(admin), dev sign-in, health and readiness."""
