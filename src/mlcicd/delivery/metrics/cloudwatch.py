"""Read a backend's live metrics from CloudWatch: what the ALB publishes per target group, and
the prediction mix the model server publishes in CloudWatch's embedded metric format (EMF).

Per target group (namespace ``AWS/ApplicationELB``, dimensions ``TargetGroup`` and
``LoadBalancer``, which the ``ecs`` target puts on each backend's labels):

* ``RequestCount`` and ``HTTPCode_Target_5XX_Count`` (Sum): requests and 5xx answers;
* ``TargetResponseTime``: ``SampleCount`` and the percentile rank ``PR(:b)`` at each latency
  bucket bound ``b`` give the exact number of requests no slower than ``b`` in each period, the
  cumulative histogram the judge's latency tests count on (p50/p90/p99 alone could not say how
  many requests were slower than a bound). The report's p50/p90/p99 are read off these
  histograms; ``check()`` reads CloudWatch's own p99 for its note, and a custom check can query
  any statistic (``TargetResponseTime:p90``) through :meth:`CloudWatchSource.value`.

Predictions: ``Predictions`` (Sum) in ``namespace`` with dimensions ``ModelName``,
``ModelVersion`` and ``Label``. The server writes them as EMF log lines; with the awslogs
driver CloudWatch Logs extracts them, so the task needs no ``cloudwatch:PutMetricData``
permission, no API call sits on the request path, and a throttled API cannot slow serving.

Granularity: ALB metrics come in 60-second periods, usually 1-2 minutes late. Counters are
cumulative from ``lookback`` before the source was created (so the stable's earlier traffic
is the judge's reference): the first read sums every complete period since then, each later
read adds only the periods completed since the one before, once they are older than
``delay`` (a datapoint arriving later than that is missed, so keep ``delay`` above
CloudWatch's lag). The counters move once per period; an ``interval`` shorter than
``period`` only finds nothing new. A failed call raises :class:`MeasurementError` (the judge
counts it; never a pass); a period without datapoints is a period without requests, as the
ALB publishes no zeros.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from mlcicd.delivery.metrics.base import MeasurementError, Snapshot
from mlcicd.delivery.targets.base import Backend, TargetState
from mlcicd.errors import UsageError
from mlcicd.plugins import SettingsError
from mlcicd.serving.emf import DEFAULT_NAMESPACE
from mlcicd.serving.metrics import LATENCY_BUCKETS

ALB_NAMESPACE = "AWS/ApplicationELB"
# Latency bucket bounds (seconds) the histogram is read at: the model server's own grid, so the
# judge compares the same quantile bounds on every source.
BOUNDS = LATENCY_BUCKETS
_MAX_QUERIES = 500  # GetMetricData's limit per call
# ListMetrics shows a new metric up to 15 minutes after its first datapoint (GetMetricData reads it sooner).
_LISTED_WITHIN = 900.0
_T = TypeVar("_T")


@dataclass
class CloudWatchConfig:
    region: str | None = None
    # Seconds per datapoint: 60 for ALB metrics; 1, 5, 10 or 30 only for high-resolution metrics.
    period: int = 60
    # Seconds CloudWatch may still be filling a period (ALB metrics arrive 1-2 minutes late).
    delay: float = 120.0
    # How much of the stable's earlier traffic to read as the judge's reference.
    lookback: float = 3600.0
    # Where the model server's EMF prediction metrics land.
    namespace: str = DEFAULT_NAMESPACE
    # Seconds one GetMetricData call may take before the look counts as unreadable (the monitor
    # looks again next interval; three unreadable looks in a row end the bake inconclusive).
    read_timeout: float = 10.0

    def check(self) -> None:
        if self.period not in (1, 5, 10, 30) and (self.period < 60 or self.period % 60):
            raise SettingsError("period", f"{self.period} is not a CloudWatch period",
                                "use 60 (or a multiple of 60) for ALB metrics; 1, 5, 10 or 30 only for "
                                "high-resolution metrics")
        if self.read_timeout <= 0:
            raise SettingsError("read_timeout", f"must be positive, got {self.read_timeout}",
                                "e.g. `read_timeout: 10` (seconds)")
        for key in ("delay", "lookback"):
            if getattr(self, key) < 0:
                raise SettingsError(key, f"must not be negative, got {getattr(self, key)}",
                                    "e.g. `delay: 120`, `lookback: 3600`")
        if not self.namespace or self.namespace.startswith("AWS/"):
            raise SettingsError("namespace", f"{self.namespace!r} cannot hold the server's metrics",
                                "use your own namespace, e.g. `namespace: mlci/Serving` (AWS/ is reserved)")


class CloudWatchSource:
    name = "cloudwatch"
    settings_type = CloudWatchConfig

    def __init__(self, cfg: CloudWatchConfig, *, where: str = "mlci.yaml: deploy.canary.sources.cloudwatch",
                 now: Callable[[], float] = time.time) -> None:
        cfg.check()
        self.cfg, self.where, self.now = cfg, where, now
        self.origin = self._floor(now() - cfg.lookback)
        self._client: Any = None
        # Per backend: the end of the last period read, and the counts up to it.
        self._read_until: dict[str, float] = {}
        self._totals: dict[str, Snapshot] = {}

    @property
    def resolution(self) -> float:
        """Seconds between new data: reading more often only sees the same counts again."""
        return float(self.cfg.period)

    @property
    def lag(self) -> float:
        """Seconds before a request shows up in reads (publication delay plus one whole period)."""
        return float(self.cfg.delay + self.cfg.period)

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlcicd.aws import client

            # A look must not hang: few retries, short reads (the monitor looks again next interval).
            self._client = client("cloudwatch", self.cfg.region, attempts=2, read_timeout=self.cfg.read_timeout,
                                  region_key="deploy.canary.sources.cloudwatch.region")
        return self._client

    def _floor(self, t: float) -> float:
        return t - t % self.cfg.period


    @staticmethod
    def _dimensions(backend: Backend) -> list[dict[str, str]]:
        tg, lb = backend.labels.get("TargetGroup"), backend.labels.get("LoadBalancer")
        if not tg or not lb:
            raise MeasurementError(f"{backend.slot} v{backend.release.version}: the deploy target gives no "
                                   "TargetGroup/LoadBalancer dimensions (the cloudwatch source reads ALB metrics; "
                                   "use it with the ecs target)")
        return [{"Name": "TargetGroup", "Value": tg}, {"Name": "LoadBalancer", "Value": lb}]

    def _query(self, queries: list[dict[str, Any]], window: tuple[datetime, datetime]) -> dict[str, list[Any]]:
        """Id -> [(timestamp, value), ...] for every query, through as many calls as the limit needs."""
        found: dict[str, list[Any]] = {}
        for i in range(0, len(queries), _MAX_QUERIES):
            for page in self._pages("GetMetricData", MetricDataQueries=queries[i:i + _MAX_QUERIES],
                                    StartTime=window[0], EndTime=window[1]):
                for result in page.get("MetricDataResults", []):
                    found.setdefault(result["Id"], []).extend(
                        zip(result.get("Timestamps", []), result.get("Values", []), strict=False))
        return found

    def _stat(self, qid: str, name: str, dims: list[dict[str, str]], stat: str,
              namespace: str = ALB_NAMESPACE, period: int | None = None) -> dict[str, Any]:
        return {"Id": qid, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": dims},
            "Period": period or self.cfg.period, "Stat": stat}}

    def read(self, backend: Backend) -> Snapshot:
        key = f"{backend.slot}|{backend.url}|{backend.labels.get('TargetGroup')}"
        start = self._read_until.get(key, self.origin)
        end = self._floor(self.now() - self.cfg.delay)
        total = self._totals.get(key, Snapshot())
        if end <= start:
            return total
        new = self._read_window(backend, (datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)))
        total = _plus(total, new)
        self._read_until[key], self._totals[key] = end, total
        return total

    def _read_window(self, backend: Backend, window: tuple[datetime, datetime]) -> Snapshot:
        """The counts of the periods in ``window`` (complete periods only)."""
        dims = self._dimensions(backend)
        queries = [self._stat("req", "RequestCount", dims, "Sum"),
                   self._stat("err", "HTTPCode_Target_5XX_Count", dims, "Sum"),
                   self._stat("n", "TargetResponseTime", dims, "SampleCount")]
        queries += [self._stat(f"b{i}", "TargetResponseTime", dims, f"PR(:{b:g})") for i, b in enumerate(BOUNDS)]
        labels = self._labels(backend)
        model = [{"Name": "ModelName", "Value": backend.release.model_name},
                 {"Name": "ModelVersion", "Value": backend.release.version}]
        queries += [self._stat(f"p{i}", "Predictions", [*model, {"Name": "Label", "Value": label}], "Sum",
                               self.cfg.namespace) for i, label in enumerate(labels)]
        found = self._query(queries, window)

        def total(qid: str) -> float:
            return float(sum(v for _, v in found.get(qid, [])))

        requests, errors = total("req"), total("err")
        samples = {ts: v for ts, v in found.get("n", [])}
        buckets: dict[float, float] = {}
        for i, bound in enumerate(BOUNDS):
            # Requests no slower than the bound: each period's percentile rank times its sample count.
            buckets[bound] = float(sum(samples.get(ts, 0.0) * pr / 100 for ts, pr in found.get(f"b{i}", [])))
        buckets[math.inf] = float(sum(samples.values()))
        predictions = {label: total(f"p{i}") for i, label in enumerate(labels)}
        return Snapshot({"200": max(requests - errors, 0.0), "500": errors} if requests else {}, buckets, predictions)

    def _labels(self, backend: Backend) -> list[str]:

        dims = [{"Name": "ModelName", "Value": backend.release.model_name},
                {"Name": "ModelVersion", "Value": backend.release.version}]
        labels: set[str] = set()
        for page in self._pages("ListMetrics", Namespace=self.cfg.namespace, MetricName="Predictions",
                                Dimensions=dims):
            for metric in page.get("Metrics", []):
                labels.update(d["Value"] for d in metric.get("Dimensions", []) if d["Name"] == "Label")
        return sorted(labels)

    def _pages(self, action: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every page of a CloudWatch call (NextToken); MeasurementError when one fails."""
        from botocore.exceptions import BotoCoreError, ClientError

        call = getattr(self.client, re.sub(r"(?<!^)([A-Z])", r"_\1", action).lower())
        while True:
            try:
                page: dict[str, Any] = call(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise MeasurementError(f"CloudWatch {action} failed: {exc}") from exc
            yield page
            token = page.get("NextToken")
            if not token:
                return
            kwargs["NextToken"] = token

    def value(self, query: str, backend: Backend) -> float:
        """A custom check: ``<MetricName>:<Stat>`` of the backend's target group, summed over the last period.

        E.g. ``TargetConnectionErrorCount:Sum`` or ``TargetResponseTime:p99``, in AWS/ApplicationELB.
        """
        name, _, stat = query.partition(":")
        if not name or not stat:
            raise UsageError(f"custom check query {query!r} is not <MetricName>:<Stat>",
                             where="mlci.yaml: deploy.canary.checks.custom[].query (source: cloudwatch)",
                             fix="e.g. `query: TargetConnectionErrorCount:Sum` (AWS/ApplicationELB, this backend's "
                             "target group)")
        end = self._floor(self.now() - self.cfg.delay)
        window = (datetime.fromtimestamp(end - self.cfg.period, UTC), datetime.fromtimestamp(end, UTC))
        found = self._query([self._stat("v", name, self._dimensions(backend), stat)], window).get("v", [])
        if not found:
            raise MeasurementError(f"no {query} datapoint for {backend.slot} in the last complete period")
        return float(found[-1][1])

    def check(self, state: TargetState) -> list[str]:
        """Before any traffic moves: can we read the metrics the analysis will need? Notes for the report.

        Raises UsageError (exit 2, naming the key and the fix) for a denied permission, a region
        other than the load balancer's, and a stable that has served requests (its target group's
        ``RequestCount`` exists in AWS/ApplicationELB) while ``namespace`` holds no ``Predictions``
        of its model version; AwsUnavailable when CloudWatch does not answer (nothing changed
        yet, so re-running is safe). What cannot be checked yet is a note, never an error: a
        first release (no stable), a stable that has served no request yet, or one that began
        serving too recently for CloudWatch to list its metrics (ListMetrics shows a new metric
        up to 15 minutes late; ALB metrics arrive ``delay`` late).
        """
        backends = [b for b in (state.stable, state.canary) if b is not None]
        for backend in backends:
            self._check_labels(backend)
        notes: list[str] = []
        if state.stable is None:
            # Nothing serves to check the namespace against; at least the job may read CloudWatch.
            self._checked("ListMetrics", lambda: next(self._pages(
                "ListMetrics", Namespace=self.cfg.namespace, MetricName="Predictions")))
            notes.append("no stable serves yet (first release): nothing to check the namespace and dimensions "
                         "against; CloudWatch answers, and the new version's metrics are read as it serves")
        # Whole minutes from before the stable's metrics can be listed (see _LISTED_WITHIN) up to now.
        now = self.now()
        span = 60 * max(10, math.ceil(max(self.cfg.lookback, self.lag + _LISTED_WITHIN) / 60))
        end = now - now % 60
        window = (datetime.fromtimestamp(end - span, UTC), datetime.fromtimestamp(end, UTC))
        for backend in backends:
            dims = self._dimensions(backend)
            queries = [self._stat("req", "RequestCount", dims, "Sum", period=60),
                       self._stat("p", "TargetResponseTime", dims, "p99", period=span)]
            found = self._checked("GetMetricData", functools.partial(self._query, queries, window))
            if backend.slot == "stable":
                notes.append(self._check_stable(backend, dims, found, window[0].timestamp(), span))
        return notes

    def _check_labels(self, backend: Backend) -> None:
        """The deploy target labels the backend with CloudWatch's dimension values, in this region."""
        try:
            dims = self._dimensions(backend)
        except MeasurementError as exc:
            raise UsageError(str(exc), where=f"{self.where} / deploy.target",
                             fix="use source cloudwatch with target ecs, or choose another metric source") from exc
        tg, lb = dims[0]["Value"], dims[1]["Value"]
        if not tg.startswith("targetgroup/") or not lb.startswith("app/"):
            raise UsageError(f"{backend.slot} v{backend.release.version}: the deploy target labels TargetGroup={tg!r}, "
                             f"LoadBalancer={lb!r}, which are not the dimension values the ALB publishes under "
                             "(`targetgroup/<name>/<id>` and `app/<name>/<id>`, the tails of the ARNs)",
                             where=f"{self.where} / deploy.target",
                             fix="use source cloudwatch with target ecs, or fix the target plugin's labels")
        arn = backend.labels.get("target_group_arn", "")
        parts = arn.split(":")
        region = str(self.client.meta.region_name)
        if arn.startswith("arn:") and len(parts) > 3 and parts[3] and parts[3] != region:
            raise UsageError(f"CloudWatch is read in {region}, but the {backend.slot}'s target group is in {parts[3]}, "
                             "where its load balancer publishes its metrics", where=f"{self.where}.region",
                             fix=f"set `region: {parts[3]}`, or remove `region` (the source then reads in "
                                 "deploy.ecs.region)")

    def _check_stable(self, backend: Backend, dims: list[dict[str, str]], found: dict[str, list[Any]],
                      start: float, span: int) -> str:
        """The note on the stable's traffic; UsageError when it served but its predictions are nowhere."""
        minutes = span // 60
        version = backend.release.version
        served = sum(v for _, v in found.get("req", []))
        # Requests older than this have their metrics listed by now, predictions included.
        listed_by = self.now() - self.lag - _LISTED_WITHIN
        if served > 0:
            first = min(ts.timestamp() for ts, v in found["req"] if v > 0)
            settled = first + 60 <= listed_by
            p99 = [v for _, v in found.get("p", []) if v is not None]
            note = (f"stable: {served:,.0f} requests in the last {minutes} min"
                    + (f", p99 {1000 * max(p99):,.0f} ms" if p99 else ""))
        else:
            listed = self._checked("ListMetrics", lambda: next(self._pages(
                "ListMetrics", Namespace=ALB_NAMESPACE, MetricName="RequestCount", Dimensions=dims))).get("Metrics")
            if not listed:
                return (f"stable v{version}: no requests yet (no RequestCount in {ALB_NAMESPACE} for "
                        f"TargetGroup={dims[0]['Value']}, LoadBalancer={dims[1]['Value']}), so the namespace and "
                        "dimensions cannot be checked before it serves; the bake reads its traffic as it comes")
            settled = start <= listed_by
            note = f"stable: no requests in the last {minutes} min (it served before)"
        if not settled:
            return (note + f"; its prediction metrics are checked once it has served for "
                    f"{math.ceil((self.lag + _LISTED_WITHIN) / 60)} min (CloudWatch lists a new metric up to "
                    f"{_LISTED_WITHIN / 60:.0f} min late)")
        if self._checked("ListMetrics", lambda: self._labels(backend)):
            return note
        others = self._checked("ListMetrics", lambda: next(self._pages(
            "ListMetrics", Namespace=self.cfg.namespace, MetricName="Predictions"))).get("Metrics", [])
        what = (f"the stable v{version} served requests (its target group's RequestCount in {ALB_NAMESPACE}) but "
                f"namespace {self.cfg.namespace!r} ")
        if not others:
            raise UsageError(what + "holds no Predictions metric at all", where=f"{self.where}.namespace",
                             fix="set the namespace the model server writes to (its MLCI_EMF_NAMESPACE, "
                             f"{DEFAULT_NAMESPACE} unless deploy.ecs.environment sets another), and run the task with "
                             "the awslogs log driver (deploy.ecs.log_group) so CloudWatch extracts them")
        seen = sorted({", ".join(f"{d['Name']}={d['Value']}" for d in m.get("Dimensions", [])
                                 if d["Name"] in ("ModelName", "ModelVersion")) for m in others})
        raise UsageError(what + f"holds Predictions only for other dimensions ({'; '.join(seen[:3])}), none for "
                         f"ModelName={backend.release.model_name}, ModelVersion={version}",
                         where=f"{self.where}.namespace",
                         fix="the model server names its metrics after MLCI_MODEL_NAME and MLCI_MODEL_VERSION, which "
                         "the ecs target sets from the release: remove overrides of them from deploy.ecs.environment, "
                         "or set namespace to the one this model's servers write to")

    def _checked(self, action: str, call: Callable[[], _T]) -> _T:
        """``call()``, with a failed CloudWatch call as the error check() owes: exit 2 or re-run."""
        from botocore.exceptions import ClientError

        from mlcicd.aws import AwsUnavailable, denied

        try:
            return call()
        except MeasurementError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and denied(cause):
                raise UsageError(f"CloudWatch denied {action}: {cause}", where=self.where,
                                 fix=f"allow `cloudwatch:{action}` (the source needs `cloudwatch:GetMetricData` and "
                                 "`cloudwatch:ListMetrics`) for the job's role; see the README's IAM policy") from exc
            if isinstance(cause, ClientError):
                raise UsageError(str(exc), where=self.where, fix="check the region and the namespace") from exc
            raise AwsUnavailable(f"could not check the canary's metrics before moving traffic: {exc}; "
                                 "nothing was changed, re-running is safe") from exc


def _plus(a: Snapshot, b: Snapshot) -> Snapshot:
    def add(x: dict[Any, float], y: dict[Any, float]) -> dict[Any, float]:
        return {k: x.get(k, 0.0) + y.get(k, 0.0) for k in x.keys() | y.keys()}

    return Snapshot(add(a.requests, b.requests), add(a.latency_buckets, b.latency_buckets),
                    add(a.predictions, b.predictions))
