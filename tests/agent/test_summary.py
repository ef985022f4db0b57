from apps.agent.agent import Exchange, PolicyCheckResult
from apps.agent.summary import describe_result, fleet_summary, percentile


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.5) == 0.0


def test_fleet_summary_counts_statuses_and_failures():
    ok = PolicyCheckResult("http://t/tam", "draft-26", installed=["a"])
    ok.exchanges = [
        Exchange("empty", 200, "query-request", 0.010, 0, 10),
        Exchange("query-response", 204, None, 0.030, 10, 0),
    ]
    busy = PolicyCheckResult(
        "http://t/tam", "draft-26", error="HTTP 503", http_status=503, retry_after=30
    )
    busy.exchanges = [Exchange("empty", 503, None, 0.001, 0, 0)]
    summary = fleet_summary([ok, busy])
    assert summary["exchanges"] == 3 and summary["installs"] == 1
    assert summary["failures"] == 1 and summary["ok"] == 1
    assert summary["http_statuses"] == {"200": 1, "204": 1, "503": 1}
    assert summary["latency_ms"]["max"] == 30.0  # only answered exchanges count
    assert "retry after 30 s" in describe_result(busy)[-1]
