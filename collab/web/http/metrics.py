"""The Prometheus registry of one application, and the collector that reads it at scrape time.

Per-message numbers (frames, bytes, update apply time) are plain counters on the room manager
(`collab.observability.counters`); gauges (connections, rooms, queued bytes, store backlog) are
computed from live objects when `/metrics` is scraped. Only per-request numbers (HTTP requests)
go through `prometheus_client` metric objects, whose locks cost nothing at that rate. Each
application has its own registry, so several servers in one process never share a series.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from collab.bus.base import Bus
from collab.delivery.service import OUTCOMES, WebhookService
from collab.observability.counters import (
    FRAME_KINDS,
    FrameCounts,
    LatencyHistogram,
    LiveTraffic,
)
from collab.rooms.email_digests import EmailDigests
from collab.rooms.indexer import CatalogIndexer
from collab.rooms.manager import RoomManager
from collab.rooms.reminders import DueReminders
from collab.rooms.versions import NoteHistory
from collab.web.sockets.sessions import CONNECTION_KINDS, Sessions

# Auth failure reasons: a fixed set, so a series never carries anything from a token.
AUTH_FAILURE_REASONS = (
    "missing_token",
    "malformed_header",
    "token_too_long",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "wrong_issuer",
    "missing_claim",
    "algorithm_not_allowed",
    "unknown_key",
    "bad_signature",
    "invalid_claims",
    "invalid_token",
    "origin_not_allowed",
    "revoked",
    "no_role",
    "read_only",
    "forbidden",
    "metrics_token",
    "other",
)

# Bus counters some `Bus` implementations keep (RedisBus has all, MemoryBus the first two).
_BUS_COUNTERS = (
    ("published", "collab_bus_published", "Messages this instance published on the bus."),
    ("received", "collab_bus_received", "Messages from other instances received on the bus."),
    (
        "dropped_publishes",
        "collab_bus_publish_dropped",
        "Messages dropped before reaching the bus (queue full or refused).",
    ),
    ("gaps_detected", "collab_bus_gaps", "Gaps seen in another instance's message sequence."),
    ("reconnects", "collab_bus_reconnects", "Reconnections to the bus backend."),
)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """Everything `/metrics` reports for one application."""

    def __init__(
        self,
        rooms: RoomManager,
        bus: Bus,
        sessions: Sessions,
        indexer: CatalogIndexer,
        history: NoteHistory,
        webhooks: WebhookService | None = None,
        *,
        reminders: DueReminders | None = None,
        digests: EmailDigests | None = None,
    ) -> None:
        self.auth_failures: dict[str, int] = dict.fromkeys(AUTH_FAILURE_REASONS, 0)
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "collab_http_requests",
            "HTTP requests by method, route pattern and status (101: WebSocket upgrades).",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "collab_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route pattern (not WebSockets).",
            ["method", "route"],
            registry=self.registry,
        )
        # Counted by the live channel as it goes; read at scrape time like the rest.
        self.live_traffic = LiveTraffic()
        self.registry.register(
            _CollabCollector(
                self, rooms, bus, sessions, indexer, history, webhooks, reminders, digests
            )
        )
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def count_auth_failure(self, reason: str) -> None:
        key = reason if reason in self.auth_failures else "other"
        self.auth_failures[key] += 1

    def observe_http(self, method: str, route: str, status: int, seconds: float | None) -> None:
        """Count one answered request; `seconds` is None for a WebSocket (its duration is the
        connection's life, not a latency)."""
        method = method if method in HTTP_METHODS else "OTHER"
        self.http_requests.labels(method, route, str(status)).inc()
        if seconds is not None:
            self.http_duration.labels(method, route).observe(seconds)


class _CollabCollector(Collector):
    def __init__(
        self,
        metrics: Metrics,
        rooms: RoomManager,
        bus: Bus,
        sessions: Sessions,
        indexer: CatalogIndexer,
        history: NoteHistory,
        webhooks: WebhookService | None,
        reminders: DueReminders | None,
        digests: EmailDigests | None,
    ) -> None:
        self._metrics = metrics
        self._webhooks = webhooks
        self._reminders = reminders
        self._digests = digests
        self._indexer = indexer
        self._history = history
        self._rooms = rooms
        self._bus = bus
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        yield from self._connections()
        yield from self._traffic()
        yield from _live_families(self._metrics.live_traffic)
        yield from self._rooms_and_store()
        yield from self._catalog()
        yield from self._versions()
        yield from self._webhook_deliveries()
        yield from self._reminder_and_email_metrics()
        yield from self._bus_metrics()
        failures = CounterMetricFamily(
            "collab_auth_failures",
            "Requests and upgrades refused with 401 or 403, by reason.",
            labels=["reason"],
        )
        for reason, count in self._metrics.auth_failures.items():
            failures.add_metric([reason], count)
        yield failures

    def _connections(self) -> Iterator[Metric]:
        sessions = self._sessions
        open_now = GaugeMetricFamily(
            "collab_ws_connections", "WebSocket connections open now.", labels=["kind"]
        )
        opened = CounterMetricFamily(
            "collab_ws_connections_opened", "WebSocket connections accepted.", labels=["kind"]
        )
        queued_bytes = GaugeMetricFamily(
            "collab_outbox_queued_bytes",
            "Bytes waiting in connections' outboxes (sockets that fell behind).",
            labels=["kind"],
        )
        queued_frames = GaugeMetricFamily(
            "collab_outbox_queued_frames",
            "Frames waiting in connections' outboxes (sockets that fell behind).",
            labels=["kind"],
        )
        for kind in CONNECTION_KINDS:
            peers = sessions.peers(kind)
            open_now.add_metric([kind], len(peers))
            opened.add_metric([kind], sessions.opened_total[kind])
            queued_bytes.add_metric([kind], sum(peer.queued_bytes for peer in peers))
            queued_frames.add_metric([kind], sum(peer.queued_frames for peer in peers))
        yield from (open_now, opened, queued_bytes, queued_frames)

    def _traffic(self) -> Iterator[Metric]:
        traffic = self._rooms.traffic
        for direction, counts in (("received", traffic.received), ("sent", traffic.sent)):
            yield from _frame_families(direction, counts)
        yield _histogram(
            "collab_update_apply_seconds",
            "Time to apply one document update that changed the document (any origin).",
            self._rooms.apply_time,
        )

    def _rooms_and_store(self) -> Iterator[Metric]:
        rooms = self._rooms
        store = rooms.store_stats()
        yield GaugeMetricFamily("collab_rooms_loaded", "Documents loaded now.", rooms.loaded_rooms)
        yield CounterMetricFamily(
            "collab_slow_consumer_disconnects",
            "Document connections closed (1013) because their outbox went over its bound.",
            rooms.slow_consumer_disconnects,
        )
        yield CounterMetricFamily(
            "collab_saved_echoes",
            "Update messages giving `?saved=1` connections their updates back once stored.",
            rooms.saved_echoes,
        )
        yield CounterMetricFamily(
            "collab_update_trials",
            "Updates read and tried on a replica in the trial worker before being applied.",
            rooms.tried_updates,
        )
        yield CounterMetricFamily(
            "collab_updates_too_costly",
            "Updates refused because their trial apply took over COLLAB_MAX_APPLY_MS.",
            rooms.costly_updates,
        )
        yield _histogram(
            "collab_store_flush_seconds",
            "Time of one store transaction appending a batch of updates.",
            store.flush_time,
        )
        yield CounterMetricFamily(
            "collab_store_flush_failures",
            "Store writes (appends and compactions) that failed and will be retried.",
            store.failures,
        )
        yield GaugeMetricFamily(
            "collab_store_backlog_updates",
            "Applied updates not yet written to the store.",
            store.backlog,
        )
        yield GaugeMetricFamily(
            "collab_store_healthy",
            "1 while the last store operation succeeded, 0 after a failure.",
            1 if store.healthy else 0,
        )

    def _catalog(self) -> Iterator[Metric]:
        indexer = self._indexer
        yield CounterMetricFamily(
            "collab_catalog_indexed_notes",
            "Catalog entries written from notes' documents (edits, start-up, on demand).",
            indexer.indexed_notes,
        )
        yield CounterMetricFamily(
            "collab_catalog_index_seconds",
            "Event-loop time spent reading notes' catalog fields from their documents.",
            indexer.index_seconds,
        )
        yield CounterMetricFamily(
            "collab_catalog_index_failures",
            "Notes whose catalog write failed (store down), retried at the next interval.",
            indexer.failures,
        )
        yield GaugeMetricFamily(
            "collab_catalog_dirty_notes",
            "Notes edited since their catalog entry was last written.",
            indexer.dirty_notes,
        )

    def _versions(self) -> Iterator[Metric]:
        history = self._history
        created = CounterMetricFamily(
            "collab_versions_created",
            "Note versions stored by this instance, by kind (auto, named, restore).",
            labels=["kind"],
        )
        for kind, count in sorted(history.created.items()):
            created.add_metric([kind], count)
        yield created
        yield CounterMetricFamily(
            "collab_version_loop_seconds",
            "Event-loop time spent encoding the states of versions taken here.",
            history.loop_seconds,
        )
        yield CounterMetricFamily(
            "collab_version_failures",
            "Automatic versions not taken because the store failed.",
            history.failures,
        )
        yield GaugeMetricFamily(
            "collab_version_stored_bytes",
            "Bytes the stored versions of every note take (compressed; refreshed each minute).",
            history.stored_bytes,
        )

    def _webhook_deliveries(self) -> Iterator[Metric]:
        if self._webhooks is None:
            return
        attempts = CounterMetricFamily(
            "collab_webhook_deliveries",
            "Webhook delivery attempts made here, by outcome: delivered, retried (failed, tried "
            "again later), failed (for good), lost_lease (recorded too late), not_signed (not "
            "made: this instance lacks the key the secret is sealed with; postponed).",
            labels=["outcome"],
        )
        for outcome in OUTCOMES:
            attempts.add_metric([outcome], self._webhooks.outcomes[outcome])
        yield attempts

    def _reminder_and_email_metrics(self) -> Iterator[Metric]:
        if self._reminders is not None:
            yield CounterMetricFamily(
                "collab_reminders_sent",
                "Notifications this instance created from deadline reminders (due_soon, "
                "overdue): one per recipient.",
                self._reminders.sent,
            )
            yield CounterMetricFamily(
                "collab_reminder_failures",
                "Reminders this instance failed to arm or send (store down); sent after "
                "their lease.",
                self._reminders.failures,
            )
        if self._digests is not None:
            yield CounterMetricFamily(
                "collab_email_digests_sent",
                "Email digests this instance sent.",
                self._digests.sent,
            )
            yield CounterMetricFamily(
                "collab_email_digest_failures",
                "Email digest attempts of this instance that failed (SMTP, store or presence), "
                "retried later.",
                self._digests.failures,
            )

    def _bus_metrics(self) -> Iterator[Metric]:
        stats = self._bus.stats()
        for attribute, name, documentation in _BUS_COUNTERS:
            yield CounterMetricFamily(name, documentation, getattr(stats, attribute))
        yield CounterMetricFamily(
            "collab_bus_resyncs",
            "Document resyncs with other instances after messages may have been lost.",
            self._rooms.bus_resyncs,
        )


def _frame_families(direction: str, counts: FrameCounts) -> Iterator[Metric]:
    verb = "received from" if direction == "received" else "delivered to"
    frames = CounterMetricFamily(
        f"collab_ws_messages_{direction}",
        f"y-websocket messages {verb} document connections, by message type.",
        labels=["type"],
    )
    sizes = CounterMetricFamily(
        f"collab_ws_{direction}_bytes",
        f"Payload bytes of y-websocket messages {verb} document connections, by message type.",
        labels=["type"],
    )
    for kind, name in enumerate(FRAME_KINDS):
        frames.add_metric([name], counts.frames[kind])
        sizes.add_metric([name], counts.bytes[kind])
    yield frames
    yield sizes


def _live_families(traffic: LiveTraffic) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "collab_live_messages_received",
        "JSON messages received from live-channel connections (/ws/live).",
        traffic.received_messages,
    )
    yield CounterMetricFamily(
        "collab_live_received_bytes",
        "Bytes of the JSON messages received from live-channel connections.",
        traffic.received_bytes,
    )
    yield CounterMetricFamily(
        "collab_live_events_sent",
        "JSON events (presence, notifications, replies, errors) sent to live-channel connections.",
        traffic.sent_events,
    )
    yield CounterMetricFamily(
        "collab_live_sent_bytes",
        "Bytes of the JSON events sent to live-channel connections.",
        traffic.sent_bytes,
    )


def _histogram(name: str, documentation: str, histogram: LatencyHistogram) -> Metric:
    family = HistogramMetricFamily(name, documentation, unit="")
    family.add_metric([], histogram.cumulative(), histogram.sum)
    return family
