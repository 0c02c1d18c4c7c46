"""What the router knows of each peer: failures, exclusion, latency, load and capacity.

A peer that fails twice in a row is excluded for 30 s after its last failure; any success
resets its failures. What counts as a failure is WIRE.md "[ext] who is to blame": a refused or
broken connection, a timeout, a 5xx, an unreadable answer, a failed capacity probe; a busy peer
(429, 503 + Retry-After) and a request the peer refused as the client's fault do not count.

``in_flight`` is raised and lowered in one place, :meth:`HealthBook.attempt`, a context manager
that lowers it however the attempt ends (answer, error, or the client hanging up). Everything here is cached state: selection reads it, nothing on the request
path probes a peer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..events import EventBus, PeerExcluded, PeerFailed, PeerReadmitted
from ..protocol.schemas import Capacity

__all__ = ["PeerHealth", "HealthBook", "InFlight", "FAILURES_TO_EXCLUDE", "EXCLUSION_MS"]

FAILURES_TO_EXCLUDE = 2
EXCLUSION_MS = 30_000


@dataclass
class PeerHealth:
    """The live state of one peer."""

    consecutive_failures: int = 0
    #: Milliseconds since the epoch until which the peer is left out (0: never excluded).
    excluded_until: int = 0
    last_error: str | None = None
    #: Time to first byte and total time of the last successful call, in ms.
    ttfb_ms: float | None = None
    total_ms: float | None = None
    #: Calls from this router to the peer right now.
    in_flight: int = 0
    capacity: Capacity | None = None
    capacity_at: int | None = None
    capacity_error: str | None = None
    #: Whether a PeerExcluded event is outstanding (a PeerReadmitted will close it).
    announced_exclusion: bool = field(default=False, repr=False)

    def excluded(self, now_ms: int) -> bool:
        return now_ms < self.excluded_until

    @property
    def load(self) -> int:
        """Our in-flight calls plus the queue depth the peer last reported."""
        return self.in_flight + (self.capacity.queue_depth if self.capacity else 0)


class HealthBook:
    """Health of every peer, publishing failures, exclusions and readmissions."""

    def __init__(
        self,
        bus: EventBus,
        clock_ms: Callable[[], int],
        failures_to_exclude: int = FAILURES_TO_EXCLUDE,
        exclusion_ms: int = EXCLUSION_MS,
    ) -> None:
        self._bus = bus
        self._clock_ms = clock_ms
        self.failures_to_exclude = failures_to_exclude
        self.exclusion_ms = exclusion_ms
        self.peers: dict[str, PeerHealth] = {}

    def of(self, pubkey: str) -> PeerHealth:
        health = self.peers.get(pubkey)
        if health is None:
            health = self.peers[pubkey] = PeerHealth()
        return health

    def attempt(self, pubkey: str) -> InFlight:
        """Count one call to the peer as in flight for the duration of the ``with`` block."""
        return InFlight(self.of(pubkey))

    def responded(self, pubkey: str) -> None:
        """The peer answered properly (e.g. refused a bad request): it is alive, so its run
        of failures ends, but no latency is recorded."""
        health = self.of(pubkey)
        if health.consecutive_failures:
            health.consecutive_failures = 0

    def failed(self, pubkey: str, message: str) -> None:
        """A call to the peer failed; exclude it once it has failed often enough in a row."""
        health, now = self.of(pubkey), self._clock_ms()
        health.consecutive_failures += 1
        health.last_error = message
        self._bus.publish(PeerFailed(now, pubkey, message, health.consecutive_failures))
        if health.consecutive_failures >= self.failures_to_exclude:
            health.excluded_until = now + self.exclusion_ms
            health.announced_exclusion = True
            self._bus.publish(PeerExcluded(now, pubkey, health.excluded_until))

    def succeeded(self, pubkey: str, ttfb_ms: float, total_ms: float) -> None:
        """A call succeeded: failures reset, exclusion lifted."""
        health = self.of(pubkey)
        health.consecutive_failures = 0
        health.excluded_until = 0
        health.ttfb_ms, health.total_ms = ttfb_ms, total_ms
        self._readmit(pubkey, health)

    def sweep(self) -> None:
        """Announce readmission of peers whose exclusion has run out."""
        now = self._clock_ms()
        for pubkey, health in self.peers.items():
            if health.announced_exclusion and not health.excluded(now):
                self._readmit(pubkey, health)

    def _readmit(self, pubkey: str, health: PeerHealth) -> None:
        if health.announced_exclusion:
            health.announced_exclusion = False
            self._bus.publish(PeerReadmitted(self._clock_ms(), pubkey))


class InFlight:
    """``with InFlight(health)``: one call counted in ``health.in_flight`` for the block, however
    it ends (an error, a cancellation). A class, not a generator-based context manager: it
    is on every request's path."""

    __slots__ = ("_health",)

    def __init__(self, health: PeerHealth) -> None:
        self._health = health

    def __enter__(self) -> PeerHealth:
        self._health.in_flight += 1
        return self._health

    def __exit__(self, *exc_info: object) -> None:
        self._health.in_flight -= 1
