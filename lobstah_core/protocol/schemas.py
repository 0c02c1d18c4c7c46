"""Pydantic schemas of the HTTP bodies in WIRE.md (worker, router and tracker).

Request schemas validate what the grid itself needs and let everything else through untouched:
an OpenAI chat request carries tools, response_format, temperature and fields we have never
heard of, and a worker must see them exactly as the client sent them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

from .announcements import SignedAnnouncement, Tier
from .embeddings import EncodingFormat
from .receipts import SignedReceipt
from .wire import MAX_SAFE_INTEGER, EpochMs, Pubkey, SafeCount, WireModel

#: The largest token count a request may ask for (and a receipt may carry, issue 15).
MAX_TOKEN_COUNT = 1_000_000_000

__all__ = [
    "MAX_TOKEN_COUNT",
    "ContentPart",
    "TextPart",
    "ImagePart",
    "ChatMessage",
    "StreamOptions",
    "ChatCompletionRequest",
    "JobRequest",
    "EmbeddingRequest",
    "MAX_EMBEDDING_INPUTS",
    "MAX_EMBEDDING_DIMENSIONS",
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


class _Part(_OpenAIModel):
    pass


class TextPart(_Part):
    """``{"type": "text", "text": "..."}``."""

    type: Literal["text"]
    text: StrictStr


class ImageUrl(_OpenAIModel):
    url: StrictStr = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Part):
    """``{"type": "image_url", "image_url": {"url": "https://… or data:image/…;base64,…"}}``."""

    type: Literal["image_url"]
    image_url: ImageUrl


class InputAudio(_OpenAIModel):
    data: StrictStr
    format: StrictStr


class AudioPart(_Part):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FilePart(_Part):
    type: Literal["file"]
    file: dict[str, Any]


class RefusalPart(_Part):
    type: Literal["refusal"]
    refusal: StrictStr


#: One part of a multi-part message, validated by its ``type`` (OpenAI's chat API: text,
#: image_url, input_audio, file, refusal); any other type, or a part with a field of the wrong
#: type (``"text": 5``), is a 400 at the router and at the worker, never an engine crash.
ContentPart = Annotated[
    TextPart | ImagePart | AudioPart | FilePart | RefusalPart, Field(discriminator="type")
]


class ChatMessage(_OpenAIModel):
    """A chat message. Content is a string, a list of parts, or null (assistant tool calls)."""

    role: str = Field(min_length=1)
    content: StrictStr | list[ContentPart] | None = None


class StreamOptions(_OpenAIModel):
    include_usage: StrictBool | None = None


#: A token count a client may ask for: a positive integer (not 0, -1, 1.5, NaN or Infinity).
TokenLimit = Annotated[StrictInt, Field(ge=1, le=MAX_TOKEN_COUNT)]


class ChatCompletionRequest(_OpenAIModel):
    """``POST /v1/chat/completions``: what routing needs, every other field kept as sent.

    Optional fields may be sent as JSON ``null``, which means "not set" (OpenAI's schema types
    them "X or null"): ``"stream": null`` is a plain answer.
    """

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    #: How many choices to generate (engines that cannot refuse n > 1 with a 400).
    n: Annotated[StrictInt, Field(ge=1, le=128)] | None = None
    max_tokens: TokenLimit | None = None
    max_completion_tokens: TokenLimit | None = None
    #: Sampling, as OpenAI bounds it (a NaN, a string or 1e99999 is a 400, not the engine's
    #: problem); ints are kept as sent (``"temperature": 1`` stays 1).
    temperature: Annotated[StrictInt | float, Field(ge=0, le=2, allow_inf_nan=False)] | None = None
    top_p: Annotated[StrictInt | float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    seed: Annotated[StrictInt, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)] | None = None
    stop: StrictStr | Annotated[list[StrictStr], Field(max_length=16)] | None = None
    tools: list[dict[str, Any]] | None = None

    @property
    def streamed(self) -> bool:
        """Whether the client asked for a stream (``null`` and absent mean no)."""
        return bool(self.stream)

    def to_body(self) -> dict[str, Any]:
        """The request as JSON, unknown fields included; unset fields and top-level nulls
        (the same thing, for OpenAI) left out."""
        body = self.model_dump(mode="json", exclude_unset=True)
        return {key: value for key, value in body.items() if value is not None}


class JobRequest(ChatCompletionRequest):
    """``POST /v1/jobs``: a chat request run later; ``stream`` is not allowed."""

    stream: Literal[False] = False
    metadata: dict[str, str] | None = None


#: Inputs in one embeddings request, and the largest vector a client may ask for (OpenAI's
#: limits: 2048 inputs; its largest model has 3072 dimensions).
MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_DIMENSIONS = 8192


class EmbeddingRequest(_OpenAIModel):
    """``POST /v1/embeddings``: one text or a list of texts (OpenAI's API; token arrays are
    refused, since engines such as Ollama take text only). Other fields pass through."""

    model: str = Field(min_length=1)
    input: StrictStr | Annotated[list[StrictStr], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)]
    encoding_format: EncodingFormat | None = None
    #: Length of each vector, for models that can shorten theirs.
    dimensions: Annotated[StrictInt, Field(ge=1, le=MAX_EMBEDDING_DIMENSIONS)] | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        if isinstance(value, list) and value and not isinstance(value[0], str):
            raise ValueError("send text (a string or a list of strings); token arrays are not supported")
        return value

    @property
    def texts(self) -> list[str]:
        """The input as a list of texts, in order."""
        return [self.input] if isinstance(self.input, str) else list(self.input)


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
    #: [ext] The models that embed (``POST /v1/embeddings``), when the engine can tell.
    embedding_models: list[str] | None = None


class ModelCard(BaseModel):
    """One OpenAI Model object: ``id``, ``object``, ``created`` (Unix seconds), ``owned_by``."""

    id: str
    object: Literal["model"] = "model"
    created: int
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
