"""Prometheus metrics, one registry per app (no process-wide globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every metric the gateway exports; features add theirs here."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "switchboard_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "switchboard_http_request_seconds", "HTTP request time", ["route"], registry=r
        )
        self.webhooks = Counter(
            "switchboard_crm_webhooks", "CRM webhooks by outcome", ["outcome"], registry=r
        )
        self.outbox_backlog = Gauge(
            "switchboard_outbox_backlog", "CRM outbox items not yet delivered", registry=r
        )
        self.outbox_dead = Gauge(
            "switchboard_outbox_dead_letters", "CRM outbox dead letters", registry=r
        )
        self.outbox_deliveries = Counter(
            "switchboard_outbox_deliveries", "CRM push attempts by outcome", ["outcome"], registry=r
        )
        self.ami_connected = Gauge(
            "switchboard_ami_connected", "1 while the AMI connection is up", registry=r
        )
        self.ami_events = Counter("switchboard_ami_events", "AMI events received", registry=r)
        self.ami_reconnects = Counter("switchboard_ami_reconnects", "AMI reconnects", registry=r)
        self.ami_event_lag = Gauge(
            "switchboard_ami_event_lag_seconds", "Seconds since the last AMI event", registry=r
        )
        # Back-pressure on the AMI reader and what it shed (gateway/calls/flow.py).
        self.ami_shed = Counter(
            "switchboard_ami_shed",
            "AMI work shed under load: warmup (card prefetch), raw_event (archive)",
            ["work"],
            registry=r,
        )
        self.ami_calls_refused = Counter(
            "switchboard_ami_calls_refused",
            "Events of new calls refused because pbx.max_live_calls calls were tracked",
            registry=r,
        )
        self.ami_reader_paused = Counter(
            "switchboard_ami_reader_paused_seconds",
            "Time the AMI reader waited for the call recorder to catch up",
            registry=r,
        )
        self.ami_live_calls = Gauge("switchboard_ami_live_calls", "Calls tracked", registry=r)
        self.ami_backlog = Gauge(
            "switchboard_ami_backlog", "Call changes and writes in flight", registry=r
        )
        # Refreshed on each scrape from one indexed query (gateway/messages/queue_metrics.py).
        self.send_queue_depth = Gauge(
            "switchboard_send_queue_depth",
            "Outbound contacts due now and not yet sent",
            ["channel"],
            registry=r,
        )
        self.send_queue_oldest_due = Gauge(
            "switchboard_send_queue_oldest_due_seconds",
            "How long the longest-waiting due outbound contact has been due",
            ["channel"],
            registry=r,
        )
        self.webhook_failures = Counter(
            "switchboard_webhook_failures",
            "Refused or failed provider and CRM webhooks, by webhook and problem type",
            ["webhook", "reason"],
            registry=r,
        )
