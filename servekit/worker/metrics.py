"""The per-worker metrics cache handed to handlers as `context.metrics` (metrics.md §5).

Each emitted value is printed as one `[METRICS]` line on stdout; the frontend reads the worker's
stdout and turns those lines into backend metrics (metrics.md §5.1). Values are also kept in
memory on the metric objects so handlers and tests can read them back.
"""

from __future__ import annotations

import enum
import logging
import socket
import time
from dataclasses import dataclass
from typing import Callable, Sequence

logger = logging.getLogger(__name__)

_HOSTNAME = socket.gethostname()
_UNIT_NAMES = {
    "ms": "Milliseconds",
    "s": "Seconds",
    "percent": "Percent",
    "count": "Count",
    "MB": "Megabytes",
    "GB": "Gigabytes",
    "kB": "Kilobytes",
    "B": "Bytes",
}
_TIME_UNITS = ("ms", "s")
_SIZE_UNITS = ("MB", "kB", "GB", "B")


class MetricTypes(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class MetricsCacheKeyError(KeyError):
    """`get_metric` found no metric of that name and type."""


class MetricsCacheValueError(ValueError):
    """A metric helper was given a unit it does not accept."""


@dataclass(frozen=True)
class Dimension:
    name: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}:{self.value}"


def unit_name(unit: str | None) -> str:
    """The printed unit: short forms are spelled out, an empty unit prints as `unit`."""
    if not unit:
        return "unit"
    return _UNIT_NAMES.get(unit, unit)


def _emit_line(line: str) -> None:
    print(line, flush=True)


class CachedMetric:
    """One named metric of one type; every update emits a line and keeps the latest value."""

    def __init__(
        self,
        name: str,
        unit: str,
        dimension_names: Sequence[str],
        metric_type: MetricTypes,
        emit: Callable[[str], None] = _emit_line,
    ):
        self.name = name
        self.unit = unit_name(unit)
        self.dimension_names = list(dimension_names)
        self.metric_type = metric_type
        self.values: dict[tuple[str, ...], float] = {}
        self._emit = emit

    def add_or_update(
        self, value: float, dimension_values: Sequence[str] = (), request_id: str = ""
    ) -> None:
        if len(dimension_values) != len(self.dimension_names):
            logger.error(
                "Metric %s expects %d dimension values, got %d",
                self.name, len(self.dimension_names), len(dimension_values),
            )
            return
        self.values[tuple(str(v) for v in dimension_values)] = value
        self._emit(self._format(value, dimension_values, request_id))

    def update(
        self, value: float, request_id: str = "", dimensions: Sequence[Dimension] = ()
    ) -> None:
        """Backwards-compatible form: the given Dimension objects replace the dimension names."""
        self.dimension_names = [d.name for d in dimensions]
        self.add_or_update(value, [d.value for d in dimensions], request_id)

    @property
    def value(self) -> float | None:
        """The most recently recorded value (any dimension values), None before the first."""
        return next(reversed(self.values.values()), None)

    def _format(self, value: float, dim_values: Sequence[str], request_id: str) -> str:
        dims = ",".join(f"{n}:{v}" for n, v in zip(self.dimension_names, dim_values))
        line = (
            f"[METRICS]{self.name}.{self.unit}:{value}|#{dims}"
            f"|#type:{self.metric_type.name}|#hostname:{_HOSTNAME},{int(time.time())}"
        )
        return f"{line},{request_id}" if request_id else line


class MetricsCache:
    """`context.metrics`: get-or-create metrics by (name, type) and emit them.

    Runs in the worker process. The worker sets `request_ids` before every batch so helpers
    can tag lines with the request ids and append the default `ModelName`/`Level` dimensions.
    """

    def __init__(
        self,
        model_name: str,
        request_ids: dict[int, str] | None = None,
        emit: Callable[[str], None] = _emit_line,
    ):
        self.model_name = model_name
        self.request_ids = request_ids
        self._emit = emit
        self._metrics: dict[tuple[str, MetricTypes], CachedMetric] = {}

    def add_metric_to_cache(
        self,
        metric_name: str,
        unit: str,
        dimension_names: Sequence[str] = (),
        metric_type: MetricTypes = MetricTypes.COUNTER,
    ) -> CachedMetric:
        key = (metric_name, MetricTypes(metric_type))
        if key in self._metrics:
            logger.warning("Overriding existing metric %s of type %s", *key)
        metric = CachedMetric(metric_name, unit, dimension_names, key[1], self._emit)
        self._metrics[key] = metric
        return metric

    def get_metric(
        self, metric_name: str, metric_type: MetricTypes = MetricTypes.COUNTER
    ) -> CachedMetric:
        try:
            return self._metrics[(metric_name, MetricTypes(metric_type))]
        except KeyError:
            raise MetricsCacheKeyError(f"Metric {metric_name} of type {metric_type} not found") from None

    def add_metric(
        self,
        name: str,
        value: float,
        unit: str,
        idx: int | None = None,
        dimensions: Sequence[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.COUNTER,
    ) -> None:
        dims = self._with_default_dimensions(list(dimensions or []))
        key = (name, MetricTypes(metric_type))
        metric = self._metrics.get(key) or self.add_metric_to_cache(name, unit, [], key[1])
        metric.update(value, self._request_id(idx), dims)

    def add_counter(
        self, name: str, value: float, idx: int | None = None,
        dimensions: Sequence[Dimension] | None = None,
    ) -> None:
        if value < 0:
            logger.error("Counter %s cannot be decremented (value %s)", name, value)
            return
        self.add_metric(name, value, "count", idx, dimensions, MetricTypes.COUNTER)

    def add_time(
        self, name: str, value: float, idx: int | None = None, unit: str = "ms",
        dimensions: Sequence[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.GAUGE,
    ) -> None:
        if unit not in _TIME_UNITS:
            raise MetricsCacheValueError(f"the unit for a timed metric should be one of {_TIME_UNITS}")
        self.add_metric(name, value, unit, idx, dimensions, metric_type)

    def add_size(
        self, name: str, value: float, idx: int | None = None, unit: str = "MB",
        dimensions: Sequence[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.GAUGE,
    ) -> None:
        if unit not in _SIZE_UNITS:
            raise ValueError(f"the unit for a size metric should be one of {_SIZE_UNITS}")
        self.add_metric(name, value, unit, idx, dimensions, metric_type)

    def add_percent(
        self, name: str, value: float, idx: int | None = None,
        dimensions: Sequence[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.GAUGE,
    ) -> None:
        self.add_metric(name, value, "percent", idx, dimensions, metric_type)

    def add_error(
        self, name: str, value: float, dimensions: Sequence[Dimension] | None = None
    ) -> None:
        dims = [*(dimensions or []), Dimension("Level", "Error")]
        self.add_metric(name, value, "", None, dims, MetricTypes.COUNTER)

    def _with_default_dimensions(self, dims: list[Dimension]) -> list[Dimension]:
        names = {d.name for d in dims}
        if self.request_ids is None:
            # No batch yet (e.g. inside initialize): TorchServe tags such metrics as errors.
            defaults = [Dimension("Level", "Error")]
        else:
            defaults = [Dimension("ModelName", self.model_name), Dimension("Level", "Model")]
        return dims + [d for d in defaults if d.name not in names]

    def _request_id(self, idx: int | None) -> str:
        if not self.request_ids:
            return ""
        if idx is None:
            return ",".join(self.request_ids.values())
        return self.request_ids.get(idx, "")
