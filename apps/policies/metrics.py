"""The compromise fan-out's progress for Prometheus, read at scrape time (listed in
settings.METRICS_COLLECTORS; apps/ops/metrics.py collects it)."""

from django.db.models import Count, Exists, OuterRef, Q
from prometheus_client.core import GaugeMetricFamily

from apps.policies.models import CompromiseResponse, QueuedAction


def compromise_fanout():
    running = GaugeMetricFamily(
        "tam_compromise_fanouts_running", "Compromise responses whose fan-out is not done"
    )
    running.add_metric([], CompromiseResponse.objects.filter(fanout_finished_at=None).count())
    removals = GaugeMetricFamily(
        "tam_compromise_removals",
        "Actions queued by compromise responses in progress (fan-out not done or actions "
        "still open), by state",
        labels=["state"],
    )
    open_actions = QueuedAction.objects.filter(
        compromise=OuterRef("pk"), state__in=QueuedAction.OPEN_STATES
    )
    in_progress = CompromiseResponse.objects.filter(
        Q(fanout_finished_at=None) | Exists(open_actions)
    )
    by_state = dict(
        QueuedAction.objects.filter(compromise__in=in_progress.values("pk"))
        .order_by()
        .values_list("state")
        .annotate(n=Count("id"))
    )
    for state in QueuedAction.State.values:
        removals.add_metric([state], by_state.get(state, 0))
    return [running, removals]
