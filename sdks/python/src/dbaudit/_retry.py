"""When to retry and how long to wait: pure decisions, no I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass

RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})

# Methods that may be repeated without changing the result (RFC 9110). POST, PATCH and
# DELETE are treated as unsafe to repeat: DELETE of a resource that another client
# re-created in between is not a no-op.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT"})

# The gateway's own refusals, by status, made before anything is forwarded: a request
# answered with one of these never reached the API, so even a POST may be sent again.
GATEWAY_NEVER_FORWARDED: dict[int, frozenset[str]] = {
    401: frozenset({"invalid_token", "missing_credential"}),
    429: frozenset({"rate_limited", "too_many_attempts"}),
    503: frozenset({"auth_unavailable", "rate_limit_unavailable", "busy"}),
}

# Backoff: the n-th retry (n = 0, 1, ...) waits a random time in
# [(1 - JITTER) * b, b] with b = min(initial_delay * 2**n, max_delay).
JITTER = 0.25


@dataclass(frozen=True)
class RetryPolicy:
    """Retry settings of a client. Immutable; shared by every thread and task."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, retry_index: int, random_value: float) -> float:
        """The jittered exponential delay before retry number `retry_index` (0-based);
        `random_value` is uniform in [0, 1)."""
        ceiling = min(self.initial_delay * (2.0**retry_index), self.max_delay)
        return ceiling * (1.0 - JITTER * random_value)

    def delay(self, retry_index: int, retry_after: float | None, random_value: float) -> float:
        """`Retry-After` when the server sent one (capped at `max_retry_after`), else backoff."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return self.backoff(retry_index, random_value)


def may_repeat(method: str, has_idempotency_key: bool) -> bool:
    """Whether sending the request twice is harmless whatever the first attempt did."""
    return method.upper() in IDEMPOTENT_METHODS or has_idempotency_key


def should_retry_status(status: int, method: str, has_idempotency_key: bool, never_forwarded: bool) -> bool:
    """Whether an error status is worth another attempt. A non-idempotent request is
    retried only when it is safe: an idempotency key, or a refusal of the gateway's own
    (429/503) proving the API never saw it. An ambiguous 502/504 after a POST is not."""
    if status not in RETRYABLE_STATUSES:
        return False
    if may_repeat(method, has_idempotency_key):
        return True
    return status in (429, 503) and never_forwarded


def should_retry_transport(method: str, has_idempotency_key: bool) -> bool:
    """A transport failure gives no proof that the API did not get the request, so it is
    retried only when repeating is harmless."""
    return may_repeat(method, has_idempotency_key)
