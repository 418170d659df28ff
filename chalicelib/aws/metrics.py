"""Business metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout, built by
aws-lambda-powertools: Lambda sends stdout to CloudWatch Logs, which turns each line into metrics.

Namespace `SLAClock`; every metric carries the dimension `Stage` (SLA_STAGE), most also `ContractId`,
some `Priority` and `Metric`. EMF gives one set of dimension values per line, so a `Collector`
writes one line per distinct set. A line with a `ContractId` also publishes its values without it
(a second dimension set in the same line): the dashboard's totals and the alarms read those, and
need no alarm per contract.

Powertools is imported on the first flush only: a function that records no metric (a read of the
API) never loads it.
"""
import json
import logging
import threading
from collections import defaultdict

from chalicelib import settings
from chalicelib.core.webhook_rules import is_delivery
from chalicelib.logs import log_event

NAMESPACE = "SLAClock"
COUNT, SECONDS, MILLISECONDS = "Count", "Seconds", "Milliseconds"
_writer = None  # where lines go instead of stdout (`make run` prints them short, see use_writer)
logger = logging.getLogger("sla_clock.metrics")


def stage():
    return settings.value("stage")


def use_writer(write):
    """Send every EMF document (a dict) to `write` instead of printing it; None restores stdout."""
    global _writer
    _writer = write


class Collector:
    """Sums counts and keeps measurements per set of dimensions until `flush`; safe across threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sets = defaultdict(dict)  # dimensions (sorted tuple) -> {name: [unit, value]}

    def add(self, name, value=1, unit=COUNT, contract_id=None, **dimensions):
        """Count `value` more of `name` (or, for a measurement, record it: the last one wins)."""
        found = {"Stage": stage(), **({"ContractId": contract_id} if contract_id else {}), **dimensions}
        key = tuple(sorted((k, str(v)) for k, v in found.items()))
        with self._lock:
            entry = self._sets[key].setdefault(name, [unit, 0])
            entry[1] = entry[1] + value if unit == COUNT else value

    def delivery(self, entry, outcome):
        """What outbox.deliver (or webhooks.deliver) made of an outbox entry: sent (a warning counts as
        one too) or failed. Webhook deliveries are counted apart from emails."""
        if is_delivery(entry.key):
            if outcome in ("sent", "failed"):
                self.add("WebhooksDelivered" if outcome == "sent" else "WebhooksFailed", contract_id=entry.contract_id)
        elif outcome == "sent":
            self.add("NotificationsSent", contract_id=entry.contract_id)
            if entry.kind == "warning":
                self.add("WarningsSent", contract_id=entry.contract_id)
        elif outcome == "failed":
            self.add("NotificationsFailed", contract_id=entry.contract_id)

    def flush(self):
        """Write one EMF line per set of dimensions and start afresh. Returns the documents written.
        Never raises: a metric that cannot be written is logged, and the work it measured stands."""
        with self._lock:
            sets, self._sets = self._sets, defaultdict(dict)
        if not sets:
            return []
        try:
            return self._emit(sets)
        except Exception as exc:  # noqa: BLE001 - metrics must never fail a scan or an API call
            log_event(logger, "metrics not written", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            return []

    @staticmethod
    def _emit(sets):
        from aws_lambda_powertools.metrics import EphemeralMetrics
        from aws_lambda_powertools.metrics.functions import is_metrics_disabled

        documents = []
        for key, values in sets.items():
            dimensions = dict(key)
            metrics = EphemeralMetrics(namespace=NAMESPACE)
            for name, value in dimensions.items():
                metrics.add_dimension(name=name, value=value)
            if "ContractId" in dimensions:
                metrics.add_dimensions(**{k: v for k, v in dimensions.items() if k != "ContractId"})
            for name, (unit, value) in sorted(values.items()):
                metrics.add_metric(name=name, unit=unit, value=value)
            documents.append(metrics.serialize_metric_set())
        if not is_metrics_disabled():
            for document in documents:
                if _writer is not None:
                    _writer(document)
                else:
                    print(json.dumps(document, separators=(",", ":"), ensure_ascii=False), flush=True)
        return documents


def emit(name, value=1, unit=COUNT, contract_id=None, **dimensions):
    """One metric at once, in a line of its own."""
    collector = Collector()
    collector.add(name, value, unit, contract_id, **dimensions)
    return collector.flush()


def one_line(document):
    """An EMF document as a short line for a console: "SLAClock Stage=dev ContractId=acme: Breaches=1"."""
    [directive] = document["_aws"]["CloudWatchMetrics"]
    names = [metric["Name"] for metric in directive["Metrics"]]
    dimensions = " ".join(f"{name}={document[name]}" for name in directive["Dimensions"][0])
    values = " ".join(f"{name}={_number(document[name])}" for name in names)
    return f"{directive['Namespace']} {dimensions}: {values}"


def _number(value):
    value = value[0] if isinstance(value, list) and len(value) == 1 else value
    return int(value) if isinstance(value, float) and value.is_integer() else value
