"""Direct ingestion: ``BatchPutAssetPropertyValue`` through boto3, without an IoT rule in between.

API limits (SiteWise quotas): at most 10 entries per call and 10 values per entry. Values are grouped by
property alias (in timestamp order), cut into entries of <= 10 values, and entries packed into calls of
<= 10 with no alias twice in one call (two entries for the same property in one request could race).

Partial failures: the call succeeds but ``errorEntries`` lists, per entry, error codes and the timestamps
of the values that failed. Retryable codes (throttling, internal/service errors, limit exceeded) are
re-sent with exponential backoff and jitter, only the failed values; other codes (bad alias, timestamp
out of range, access denied ...) are reported in `PutResult.rejected`, since re-sending cannot help.
A whole call failing with a retryable ``ClientError`` is retried the same way.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from botocore.exceptions import ClientError, EndpointConnectionError

MAX_ENTRIES_PER_CALL = 10
MAX_VALUES_PER_ENTRY = 10
RETRYABLE = {"InternalFailureException", "ServiceUnavailableException", "ThrottlingException",
             "LimitExceededException"}


@dataclass
class PutResult:
    calls: int = 0
    accepted: int = 0
    retried: int = 0
    rejected: list[dict] = field(default_factory=list)
    """``{"propertyAlias", "errorCode", "errorMessage", "timestamps"}`` for values SiteWise refused for good."""


def _ts_key(ts: dict) -> tuple[int, int]:
    return int(ts["timeInSeconds"]), int(ts.get("offsetInNanos", 0))


class SiteWiseDirectPublisher:
    def __init__(self, client: object, *, max_attempts: int = 5, base_delay_s: float = 0.2,
                 max_delay_s: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep

    @classmethod
    def from_region(cls, region: str | None = None, **kwargs: object) -> SiteWiseDirectPublisher:
        import boto3

        return cls(boto3.client("iotsitewise", region_name=region), **kwargs)  # type: ignore[arg-type]

    def put_messages(self, payloads: Iterable[dict]) -> PutResult:
        """Send the ``sitewise`` TQVs of MQTT payloads (as built by ``edge_app.publish.messages``)."""
        return self.put([tqv for p in payloads for tqv in (p.get("sitewise") or {}).values()])

    def put(self, aliased_tqvs: Iterable[dict]) -> PutResult:
        """Send ``{"propertyAlias", "timestamp", "quality", "value"}`` values; retries what can be retried."""
        pending: dict[str, list[dict]] = {}
        for v in aliased_tqvs:
            pending.setdefault(v["propertyAlias"], []).append(
                {k: v[k] for k in ("timestamp", "quality", "value") if k in v})
        result = PutResult()
        for attempt in range(1, self.max_attempts + 1):
            if not pending:
                break
            if attempt > 1:
                result.retried += sum(len(vs) for vs in pending.values())
                self._sleep(self._delay(attempt))
            pending = self._send_round(pending, result, last=attempt == self.max_attempts)
        return result

    def _delay(self, attempt: int) -> float:
        return min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 2)) * random.uniform(0.5, 1.0)

    def _send_round(self, pending: dict[str, list[dict]], result: PutResult, last: bool) -> dict[str, list[dict]]:
        retry: dict[str, list[dict]] = {}
        for call in pack_calls(pending):
            entries = [{"entryId": str(i), "propertyAlias": alias, "propertyValues": values}
                       for i, (alias, values) in enumerate(call)]
            result.calls += 1
            try:
                response = self.client.batch_put_asset_property_value(entries=entries)  # type: ignore[attr-defined]
            except (ClientError, EndpointConnectionError) as exc:
                code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else "EndpointConnectionError"
                for alias, values in call:
                    if code in RETRYABLE | {"EndpointConnectionError"} and not last:
                        retry.setdefault(alias, []).extend(values)
                    else:
                        result.rejected.append({"propertyAlias": alias, "errorCode": code, "errorMessage": str(exc),
                                                "timestamps": [v["timestamp"] for v in values]})
                continue
            failed_values = 0
            for error_entry in response.get("errorEntries", []):
                alias, values = call[int(error_entry["entryId"])]
                by_ts = {_ts_key(v["timestamp"]): v for v in values}
                for err in error_entry["errors"]:
                    stamps = [_ts_key(t) for t in err["timestamps"]]
                    failed_values += len(stamps)
                    if err["errorCode"] in RETRYABLE and not last:
                        retry.setdefault(alias, []).extend(by_ts[s] for s in stamps if s in by_ts)
                    else:
                        result.rejected.append({"propertyAlias": alias, "errorCode": err["errorCode"],
                                                "errorMessage": err["errorMessage"],
                                                "timestamps": err["timestamps"]})
            result.accepted += sum(len(values) for _, values in call) - failed_values
        return retry


def pack_calls(by_alias: dict[str, list[dict]]) -> list[list[tuple[str, list[dict]]]]:
    """Entries of <= 10 values (oldest first), packed into calls of <= 10 entries, each alias once per call."""
    entries = []
    for alias, values in by_alias.items():
        ordered = sorted(values, key=lambda v: _ts_key(v["timestamp"]))
        entries += [(alias, ordered[i:i + MAX_VALUES_PER_ENTRY]) for i in range(0, len(ordered), MAX_VALUES_PER_ENTRY)]
    calls: list[list[tuple[str, list[dict]]]] = []
    for alias, chunk in entries:
        for call in calls:
            if len(call) < MAX_ENTRIES_PER_CALL and all(a != alias for a, _ in call):
                call.append((alias, chunk))
                break
        else:
            calls.append([(alias, chunk)])
    return calls
