"""The built-in demo upstream: what an OpenAI-compatible server would send back, made locally.

`tollway serve --demo` routes to this so a newcomer gets real answers with no network and no
upstream key. Every function returns the exact bytes an upstream would (a JSON body, or SSE
events), so the gateway relays and bills them like any other upstream's. Pure functions: same
request, same bytes, apart from the `id` and `created` the caller passes in.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from typing import Any

import orjson

from tollway.providers.tokens import (
    count_chat_prompt,
    count_embedding_input,
    count_prompt,
    count_text,
    encoding_for,
)

DEMO_CHAT_MODEL = "demo-chat"
DEMO_EMBEDDING_MODEL = "demo-embedding"

DEFAULT_EMBEDDING_DIMENSIONS = 256
MAX_EMBEDDING_DIMENSIONS = 3072
MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit per request
MAX_CHOICES = 128  # OpenAI's limit for `n`
QUOTE_CHARS = 200
WORDS_PER_CHUNK = 3

# Follows a quote after a dash, so it reads well whatever punctuation the quote ends with.
_ABOUT = (
    "this reply comes from Tollway's built-in demo model, which runs inside the gateway and calls no "
    "AI provider. Add a channel for a real provider to get real answers."
)


class DemoInputError(ValueError):
    """The request is something the demo cannot answer; the message says what is wrong."""


# ---------------------------------------------------------------- chat completions


def chat_completion(body: dict, model: str, *, response_id: str, created: int) -> bytes:
    reply = _chat_reply(body, model)
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []}
    if reply.tool_call is not None:
        message["content"] = None
        message["tool_calls"] = [reply.tool_call]
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": reply.finish_reason} for i in range(reply.n)
    ]
    return orjson.dumps(
        {
            "id": response_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": reply.usage(),
            "service_tier": "default",
            "system_fingerprint": None,
        }
    )


def chat_completion_events(
    body: dict, model: str, *, response_id: str, created: int, include_usage: bool
) -> list[bytes]:
    reply = _chat_reply(body, model)
    head = {"id": response_id, "object": "chat.completion.chunk", "created": created, "model": model}
    if include_usage:
        head["usage"] = None  # OpenAI marks every chunk before the usage chunk this way

    def chunk(index: int, delta: dict, finish_reason: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _event({**head, "choices": [choice]})

    events: list[bytes] = []
    for i in range(reply.n):
        if reply.tool_call is not None:
            tool_calls = [{"index": 0, **reply.tool_call}]
            events.append(chunk(i, {"role": "assistant", "content": None, "tool_calls": tool_calls}))
        else:
            events.append(chunk(i, {"role": "assistant", "content": "", "refusal": None}))
            events.extend(chunk(i, {"content": piece}) for piece in _stream_pieces(reply.text))
        events.append(chunk(i, {}, reply.finish_reason))
    if include_usage:
        events.append(_event({**head, "choices": [], "usage": reply.usage()}))
    events.append(b"data: [DONE]\n\n")
    return events


class _ChatReply:
    """One decided answer: text or a tool call, plus what billing needs."""

    def __init__(
        self,
        *,
        text: str,
        tool_call: dict | None,
        finish_reason: str,
        n: int,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        self.text = text
        self.tool_call = tool_call
        self.finish_reason = finish_reason
        self.n = n
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens

    def usage(self) -> dict:
        return _usage(self.prompt_tokens, self.completion_tokens)


def _chat_reply(body: dict, model: str) -> _ChatReply:
    if not isinstance(body, dict):
        raise DemoInputError("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DemoInputError("`messages` must be a non-empty list of chat messages")
    n = _choice_count(body)
    tools = body.get("tools") if isinstance(body.get("tools"), list) else None
    prompt_tokens = count_chat_prompt(messages, model, tools)

    tool = _tool_to_call(body, messages)
    if tool is not None:
        name = tool.get("name")
        arguments = _demo_arguments(tool.get("parameters"))
        call = {
            "id": "call_" + _digest(messages, name)[:24],
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        per_choice = count_text(name, model) + count_text(arguments, model)
        return _ChatReply(
            text="",
            tool_call=call,
            finish_reason="tool_calls",
            n=n,
            prompt_tokens=prompt_tokens,
            completion_tokens=per_choice * n,
        )

    text = _chat_text(messages)
    text, finish_reason = _cut_to_limit(text, _max_tokens(body), model)
    return _ChatReply(
        text=text,
        tool_call=None,
        finish_reason=finish_reason,
        n=n,
        prompt_tokens=prompt_tokens,
        completion_tokens=count_text(text, model) * n,
    )


def _chat_text(messages: list) -> str:
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    if last.get("role") == "tool":
        result = _quote(_message_text(last))
        tool_name = _tool_name_for(messages, last.get("tool_call_id"))
        subject = f"The tool `{tool_name}`" if tool_name else "The tool"
        if result:
            return f'{subject} returned "{result}" — {_ABOUT}'
        return f"{subject} returned nothing — {_ABOUT}"
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            quote = _quote(_message_text(message))
            if quote:
                return f'You wrote: "{quote}" — {_ABOUT}'
            break
    return f"Hello! {_ABOUT[0].upper()}{_ABOUT[1:]}"


def _message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return " ".join(t for t in texts if isinstance(t, str))
    return ""


def _quote(text: str) -> str:
    """The text on one line, shortened to about QUOTE_CHARS characters at a word boundary."""
    flat = " ".join(text.split())
    if len(flat) <= QUOTE_CHARS:
        return flat
    cut = flat.rfind(" ", 0, QUOTE_CHARS)
    return flat[: cut if cut > QUOTE_CHARS // 2 else QUOTE_CHARS].rstrip() + "…"


def _tool_name_for(messages: list, tool_call_id: Any) -> str | None:
    for message in reversed(messages):
        if not isinstance(message, dict) or not isinstance(message.get("tool_calls"), list):
            continue
        for call in message["tool_calls"]:
            if isinstance(call, dict) and call.get("id") == tool_call_id:
                function = call.get("function")
                name = function.get("name") if isinstance(function, dict) else None
                return name if isinstance(name, str) else None
    return None


def _tool_to_call(body: dict, messages: list) -> dict | None:
    """The function definition to call, or None when the demo should answer with text."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return None
    functions = [
        t["function"]
        for t in tools
        if isinstance(t, dict)
        and t.get("type") == "function"
        and isinstance(t.get("function"), dict)
        and isinstance(t["function"].get("name"), str)
    ]
    choice = body.get("tool_choice")
    last = messages[-1]
    if not functions or choice == "none" or not isinstance(last, dict) or last.get("role") != "user":
        return None
    if isinstance(choice, dict):
        function = choice.get("function")
        wanted = function.get("name") if isinstance(function, dict) else None
        if wanted is None:  # a shape without a function name ("allowed_tools", ...): any will do
            return functions[0]
        for candidate in functions:
            if candidate["name"] == wanted:
                return candidate
        raise DemoInputError(f"`tool_choice` names function `{wanted}`, which is not in `tools`")
    return functions[0]


def _demo_arguments(schema: Any) -> str:
    """Arguments that satisfy the schema's required properties, filled with plain placeholders."""
    if not isinstance(schema, dict):
        return "{}"
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    arguments: dict[str, Any] = {}
    for key in required:
        spec = properties.get(key) if isinstance(key, str) else None
        if isinstance(spec, dict) and spec.get("type") == "string":
            enum = spec.get("enum")
            # An enum's first value keeps the call valid where "demo" would not be.
            arguments[key] = enum[0] if isinstance(enum, list) and enum else "demo"
    return orjson.dumps(arguments).decode()


# ---------------------------------------------------------------- completions (legacy)


def completion(body: dict, model: str, *, response_id: str, created: int) -> bytes:
    texts, prompt_tokens, completion_tokens = _completion_reply(body, model)
    choices = [
        {"text": text, "index": i, "logprobs": None, "finish_reason": finish_reason}
        for i, (text, finish_reason) in enumerate(texts)
    ]
    return orjson.dumps(
        {
            "id": response_id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": _usage(prompt_tokens, completion_tokens),
            "system_fingerprint": None,
        }
    )


def completion_events(body: dict, model: str, *, response_id: str, created: int, include_usage: bool) -> list[bytes]:
    texts, prompt_tokens, completion_tokens = _completion_reply(body, model)
    head = {"id": response_id, "object": "text_completion", "created": created, "model": model}
    if include_usage:
        head["usage"] = None

    def chunk(index: int, text: str, finish: str | None = None) -> bytes:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
        return _event({**head, "choices": [choice]})

    events: list[bytes] = []
    for i, (text, finish_reason) in enumerate(texts):
        events.extend(chunk(i, piece) for piece in _stream_pieces(text))
        events.append(chunk(i, "", finish_reason))
    if include_usage:
        events.append(_event({**head, "choices": [], "usage": _usage(prompt_tokens, completion_tokens)}))
    events.append(b"data: [DONE]\n\n")
    return events


def _completion_reply(body: dict, model: str) -> tuple[list[tuple[str, str]], int, int]:
    """((text, finish reason) of each choice, prompt tokens, completion tokens)."""
    if not isinstance(body, dict):
        raise DemoInputError("the request body must be a JSON object")
    prompts = _prompts(body.get("prompt"))
    n = _choice_count(body)
    limit = _max_tokens(body)
    echo = body.get("echo") is True
    texts: list[tuple[str, str]] = []
    completion_tokens = 0
    # Like OpenAI: a list of prompts gets n choices per prompt, in prompt order.
    for prompt in prompts:
        text, finish_reason = _cut_to_limit(_completion_text(prompt), limit, model)
        completion_tokens += count_text(text, model) * n
        shown = prompt + text if echo and isinstance(prompt, str) else text
        texts.extend([(shown, finish_reason)] * n)
    return texts, count_prompt(body.get("prompt"), model), completion_tokens


def _prompts(prompt: Any) -> list[str | list[int]]:
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt:
        if all(_is_token_id(t) for t in prompt):
            return [prompt]
        if all(isinstance(p, str) for p in prompt):
            return list(prompt)
        if all(isinstance(p, list) and all(_is_token_id(t) for t in p) for p in prompt):
            return list(prompt)
    raise DemoInputError(
        "`prompt` must be a string, a list of strings, a list of token ids, or a list of token-id lists"
    )


def _completion_text(prompt: str | list[int]) -> str:
    if isinstance(prompt, list):
        return f" (a prompt of {len(prompt)} token ids) — {_ABOUT}"
    quote = _quote(prompt)
    if not quote:
        return f" — {_ABOUT}"
    return f' (continuing "{quote}") — {_ABOUT}'


# ---------------------------------------------------------------- embeddings


def embeddings(body: dict, model: str) -> bytes:
    if not isinstance(body, dict):
        raise DemoInputError("the request body must be a JSON object")
    inputs = _embedding_inputs(body.get("input"))
    dimensions = body.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS)
    if dimensions is None:
        dimensions = DEFAULT_EMBEDDING_DIMENSIONS
    if not _is_int(dimensions) or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS:
        raise DemoInputError(f"`dimensions` must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}")
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise DemoInputError('`encoding_format` must be "float" or "base64"')

    data = []
    for index, item in enumerate(inputs):
        vector = _unit_vector(item, dimensions)
        packed = struct.pack(f"<{dimensions}f", *vector)
        embedding: list[float] | str
        if encoding_format == "base64":
            embedding = base64.b64encode(packed).decode()
        else:
            # Round-trip through float32 so float and base64 answers carry the very same numbers.
            embedding = list(struct.unpack(f"<{dimensions}f", packed))
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = count_embedding_input(body.get("input"), model)
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _embedding_inputs(value: Any) -> list[str | list[int]]:
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(_is_token_id(t) for t in value):
        items = [value]
    elif isinstance(value, list):
        items = value
    else:
        raise DemoInputError("`input` must be a string, a list of strings, or token-id list(s)")
    if not items:
        raise DemoInputError("`input` is empty; send at least one string to embed")
    if len(items) > MAX_EMBEDDING_INPUTS:
        raise DemoInputError(f"`input` has {len(items)} items; at most {MAX_EMBEDDING_INPUTS} are allowed")
    for i, item in enumerate(items):
        if isinstance(item, str):
            if not item:
                raise DemoInputError(f"`input[{i}]` is an empty string; there is nothing to embed")
        elif isinstance(item, list) and all(_is_token_id(t) for t in item):
            if not item:
                raise DemoInputError(f"`input[{i}]` is an empty token list; there is nothing to embed")
        else:
            raise DemoInputError(f"`input[{i}]` must be a string or a list of token ids")
    return items


def _unit_vector(item: str | list[int], dimensions: int) -> list[float]:
    """A deterministic direction for `item`: sha256 in counter mode, mapped to [-1, 1], normalized."""
    seed = item.encode() if isinstance(item, str) else b"ids:" + ",".join(map(str, item)).encode()
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(seed + block.to_bytes(4, "little")).digest()
        values.extend(v / 2_147_483_648 - 1.0 for v in struct.unpack("<8I", digest))
        block += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


# ---------------------------------------------------------------- shared helpers


def _choice_count(body: dict) -> int:
    n = body.get("n", 1)
    if n is None:
        return 1
    if not _is_int(n) or not 1 <= n <= MAX_CHOICES:
        raise DemoInputError(f"`n` must be an integer from 1 to {MAX_CHOICES}")
    return n


def _max_tokens(body: dict) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if not _is_int(value) or value < 1:
            raise DemoInputError(f"`{key}` must be a positive integer")
        return value
    return None


def _cut_to_limit(text: str, limit: int | None, model: str) -> tuple[str, str]:
    """The text cut to at most `limit` tokens, and the finish reason that says whether it was cut."""
    if limit is None:
        return text, "stop"
    encoding = encoding_for(model)
    tokens = encoding.encode_ordinary(text)
    if len(tokens) <= limit:
        return text, "stop"
    # Back off until the prefix is whole UTF-8 and re-counts within the limit, so the usage we
    # report (a fresh count of the text) never exceeds max_tokens.
    for keep in range(limit, -1, -1):
        try:
            cut = encoding.decode_bytes(tokens[:keep]).decode("utf-8")
        except UnicodeDecodeError:
            continue
        if count_text(cut, model) <= limit:
            return cut, "length"
    return "", "length"


def _stream_pieces(text: str) -> list[str]:
    """The text in pieces of a few words each; the pieces join back to exactly the text."""
    # Every character lands in exactly one match, so joining the pieces gives back the text.
    words = re.findall(r"\s*\S+\s*|\s+", text)
    return ["".join(words[i : i + WORDS_PER_CHUNK]) for i in range(0, len(words), WORDS_PER_CHUNK)]


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _event(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _digest(*parts: Any) -> str:
    try:
        raw = orjson.dumps(parts, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # e.g. integers beyond 64 bits; repr is just as deterministic
        raw = repr(parts).encode()
    return hashlib.sha256(raw).hexdigest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_token_id(value: Any) -> bool:
    return _is_int(value) and value >= 0
