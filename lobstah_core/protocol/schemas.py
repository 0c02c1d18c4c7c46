"""Pydantic schemas of the HTTP bodies in WIRE.md (worker, router and tracker).

Request schemas validate what the grid itself needs and let everything else through untouched:
an OpenAI chat request carries tools, response_format, temperature and fields we have never
heard of, and a worker must see them exactly as the client sent them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from .announcements import SignedAnnouncement, Tier
from .receipts import SignedReceipt
from .wire import EpochMs, Pubkey, SafeCount, WireModel

__all__ = [
    "ContentPart",
    "ChatMessage",
    "StreamOptions",
    "ChatCompletionRequest",
    "JobRequest",
    "JobStatus",
    "JobAccepted",
    "JobRecord",
    "JobCounts",
    "Capacity",
    "ModelCard",
    "ModelList",
    "ErrorDetail",
    "ErrorBody",
    "PeerEntry",
    "PubkeyBody",
    "SelfBalance",
    "BalanceTotals",
    "Balance",
    "TrackerPeers",
    "AnnounceAccepted",
    "UnannounceResult",
]


class _OpenAIModel(BaseModel):
    # OpenAI bodies are snake_case already; unknown fields pass through.
    model_config = ConfigDict(extra="allow")


class ContentPart(_OpenAIModel):
    """One part of a multi-part message: ``{"type": "text", "text"}``, ``image_url``, ..."""

    type: str


class ChatMessage(_OpenAIModel):
    """A chat message. Content is a string, a list of parts, or null (assistant tool calls)."""

    role: str = Field(min_length=1)
    content: str | list[ContentPart] | None = None


class StreamOptions(_OpenAIModel):
    include_usage: StrictBool | None = None


class ChatCompletionRequest(_OpenAIModel):
    """``POST /v1/chat/completions``: what routing needs, every other field kept as sent."""

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None

    def to_body(self) -> dict[str, Any]:
        """The request as JSON, unknown fields included, unset defaults left out."""
        return self.model_dump(mode="json", exclude_unset=True)


class JobRequest(ChatCompletionRequest):
    """``POST /v1/jobs``: a chat request run later; ``stream`` is not allowed."""

    stream: Literal[False] = False
    metadata: dict[str, str] | None = None


JobStatus = Literal["queued", "running", "done", "error"]


class JobAccepted(WireModel):
    """``202`` answer to ``POST /v1/jobs``."""

    job_id: str
    status: JobStatus
    created_at: EpochMs


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    message: str | None = None


class ErrorBody(BaseModel):
    """``{"error": {"type", "message", ...}}``, the shape of every error response."""

    error: ErrorDetail


class JobRecord(WireModel):
    """``GET /v1/jobs/{id}``."""

    job_id: str
    status: JobStatus
    created_at: EpochMs
    started_at: EpochMs | None = None
    completed_at: EpochMs | None = None
    result: dict[str, Any] | None = None
    signed_receipt: SignedReceipt | None = None
    error: ErrorDetail | None = None
    metadata: dict[str, str] | None = None


class JobCounts(BaseModel):
    queued: SafeCount = 0
    running: SafeCount = 0
    done: SafeCount = 0
    error: SafeCount = 0


class Capacity(WireModel):
    """``GET /capacity`` of a worker."""

    pubkey: Pubkey
    models: list[str]
    #: Requests queued plus running right now.
    queue_depth: SafeCount
    tier: Tier = "best-effort"
    concurrency: SafeCount | None = None
    job_counts: JobCounts | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    owned_by: str


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class PeerEntry(WireModel):
    """One entry of ``peers.json`` and of the router's ``GET /peers``."""

    pubkey: Pubkey
    url: str
    label: str | None = None


class PubkeyBody(BaseModel):
    """``GET /pubkey``."""

    pubkey: str


class SelfBalance(BaseModel):
    pubkey: str
    earned: int
    spent: int
    net: int
    allowance: int
    available: int


class BalanceTotals(BaseModel):
    earned: int
    spent: int
    receipts: int


class Balance(BaseModel):
    """``GET /balance`` of the router, and ``lobstah-core balance --json``."""

    pubkey: str
    totals: BalanceTotals
    self: SelfBalance


class TrackerPeers(BaseModel):
    """``GET /peers`` of a tracker."""

    version: Literal[1] = 1
    count: SafeCount
    peers: list[SignedAnnouncement]


class AnnounceAccepted(WireModel):
    """``POST /announce`` success."""

    ok: Literal[True] = True
    pubkey: Pubkey
    ttl_seconds: SafeCount
    registered_count: SafeCount


class UnannounceResult(BaseModel):
    """``POST /unannounce`` success."""

    ok: Literal[True] = True
    removed: bool
