"""What every front of the router shares: the :class:`Router` state under the app key
:data:`ROUTER`, and the grid's model list as the fronts present it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from ..config import RouterSettings
from ..events import EventBus
from ..ledger import Ledger
from ..protocol.identity import Identity
from ..protocol.schemas import ModelCard
from .directory import PeerDirectory
from .dispatch import Dispatcher
from .jobs import RouterJobs
from .metrics import RouterMetrics
from .receipts import ReceiptDesk
from .reconcile import Reconciler
from .relay import Settlement

__all__ = ["Router", "ROUTER", "MODELS_MAX_AGE_MS", "CHAT_PATH", "EMBEDDINGS_PATH", "model_cards", "embedding_models"]

#: Where fronts send their calls on a worker.
CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"

#: How fresh a peer's capacity must be for a model list (WIRE.md: cached 30 s).
MODELS_MAX_AGE_MS = 30_000


@dataclass
class Router:
    """Everything the router's handlers share."""

    identity: Identity
    settings: RouterSettings
    bus: EventBus
    ledger: Ledger
    directory: PeerDirectory
    desk: ReceiptDesk
    #: Pulls the receipts the desk missed from the workers used; the relay calls its
    #: ``recover_later(peer)`` after an answer whose receipt did not arrive.
    reconciler: Reconciler
    dispatcher: Dispatcher
    jobs: RouterJobs
    clock_ms: Callable[[], int]
    metrics: RouterMetrics = field(default_factory=RouterMetrics)

    @property
    def settlement(self) -> Settlement:
        """Where relayed answers' receipts go (desk, and reconciler when one is missing)."""
        return Settlement(self.desk, self.reconciler)


ROUTER = web.AppKey("router", Router)


async def model_cards(router: Router) -> dict[str, ModelCard]:
    """The union of every peer's models by id; ``created`` is when a peer first listed it."""
    directory = router.directory
    await directory.refresh(older_than_ms=MODELS_MAX_AGE_MS)
    cards: dict[str, ModelCard] = {}
    for peer in directory.active():
        state = directory.health.of(peer.pubkey)
        capacity = state.capacity
        for name in capacity.models if capacity else []:
            created = (state.capacity_at or router.clock_ms()) // 1000
            cards.setdefault(name, ModelCard(id=name, created=created, owned_by=f"lobstah:{peer.name}"))
    return cards


def embedding_models(router: Router) -> set[str]:
    """Models some peer lists as embedding models ([ext] ``embeddingModels`` of /capacity)."""
    found: set[str] = set()
    for peer in router.directory.active():
        capacity = router.directory.health.of(peer.pubkey).capacity
        found.update(capacity.embedding_models or [] if capacity else [])
    return found
