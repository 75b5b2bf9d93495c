"""Offline BPE token counting, used to estimate cost before a call and when an upstream sends no usage.

Counts come from the `bpe_openai` tokenizer, which ships its vocabularies inside the package, so
counting never touches the network. For OpenAI models the figures match what OpenAI bills; for every
other model (Claude, Gemini, DeepSeek, local models, ...) cl100k_base is a stand-in and the figure
is only an estimate (their tokenizers differ; their own usage reports are what billing trusts).

Cost of the tokenizer (measured on the dev box, Python 3.11, bpe-openai 0.1.4): `import bpe_openai`
alone takes ~0.6-0.9 s because it reads every bundled vocabulary; loading both encodings
(`preload()`) takes ~1.1 s and ~185 MB of RSS in all. A cached encoding then counts a short text in
microseconds, but `get_encoding` copies its tables on every call (~0.03 s), hence the lazy import and
the cache below. The gateway loads a vocabulary off the event loop the first time a request needs
it (most upstreams report usage, so most deployments never pay the memory), and preloads both at
start when a demo channel exists.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from bpe_openai import Encoding

O200K = "o200k_base"
CL100K = "cl100k_base"

# Model families that OpenAI tokenizes with o200k_base; everything else falls back to cl100k_base.
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")

# OpenAI bills this for an image part at "low" detail; we cannot see the image, so every image
# counts as one low-detail tile.
IMAGE_PART_TOKENS = 85
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3

# bpe_openai refuses text of 1,000,000+ characters and results over 200,000 tokens in one call.
# A 40,000-character piece is at most 160,000 UTF-8 bytes, hence at most that many tokens.
_PIECE_CHARS = 40_000

_encodings: dict[str, Encoding] = {}
_lock = threading.Lock()


def encoding_name_for(model: str) -> str:
    """The BPE vocabulary used to count tokens for `model`."""
    name = model.strip().lower()
    # "ft:gpt-4o-mini:org::id" (fine-tunes) and "openai/gpt-4o" (router-style prefixes) name the
    # same base model as far as tokenization goes.
    if name.startswith("ft:"):
        name = name[3:]
    name = name.rsplit("/", 1)[-1]
    return O200K if name.startswith(_O200K_PREFIXES) else CL100K


def encoding_for(model: str) -> Encoding:
    """The (cached) tokenizer for `model`."""
    return _load(encoding_name_for(model))


def is_loaded(model: str) -> bool:
    """Whether counting for `model` is free of the one-time loading cost."""
    return encoding_name_for(model) in _encodings


def preload() -> None:
    """Load both vocabularies now, so no request pays the loading time."""
    _load(O200K)
    _load(CL100K)


def _load(name: str) -> Encoding:
    found = _encodings.get(name)
    if found is not None:
        return found
    with _lock:  # two threads must not both spend the load time and memory
        found = _encodings.get(name)
        if found is None:
            with warnings.catch_warnings():
                # bpe_openai 0.1.4 reads its bundled data with a deprecated importlib API; the
                # warning is theirs and says nothing to our users.
                warnings.simplefilter("ignore", DeprecationWarning)
                import bpe_openai  # imported lazily: the import alone costs most of a second

                found = bpe_openai.get_encoding(name)
            _encodings[name] = found
        return found


def count_text(text: str, model: str) -> int:
    """Tokens in `text`. Special-token markers such as <|endoftext|> count as ordinary text, as
    they do when a user sends them to OpenAI."""
    if not isinstance(text, str) or not text:
        return 0
    encoding = encoding_for(model)
    return sum(len(encoding.encode_ordinary(piece)) for piece in _pieces(text))


def _pieces(text: str) -> Iterable[str]:
    """Split long text into tokenizer-sized pieces, cutting just before whitespace where possible so
    the split changes the count as little as it can (BPE words start at a space)."""
    start = 0
    while len(text) - start > _PIECE_CHARS:
        end = start + _PIECE_CHARS
        cut = max(text.rfind(" ", start + 1, end), text.rfind("\n", start + 1, end))
        if cut <= start:
            cut = end
        yield text[start:cut]
        start = cut
    yield text[start:]


def count_chat_prompt(messages: list[dict], model: str, tools: list | None = None) -> int:
    """Prompt tokens of a chat request, the way OpenAI counts them. Never raises: parts it cannot
    read (odd shapes from clients) are skipped."""
    total = REPLY_PRIMING_TOKENS
    if isinstance(messages, list):
        for message in messages:
            total += _count_message(message, model)
    if tools:
        total += _count_json(tools, model)
    return total


def _count_message(message: Any, model: str) -> int:
    if not isinstance(message, dict):
        return 0
    total = TOKENS_PER_MESSAGE
    total += _count_str(message.get("role"), model)
    total += _count_content(message.get("content"), model)
    name = message.get("name")
    if isinstance(name, str) and name:
        total += TOKENS_PER_NAME + count_text(name, model)
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list):
        for call in tool_calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                total += _count_str(function.get("name"), model)
                total += _count_str(function.get("arguments"), model)
    return total


def _count_content(content: Any, model: str) -> int:
    if isinstance(content, str):
        return count_text(content, model)
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        if isinstance(part, str):
            total += count_text(part, model)
        elif isinstance(part, dict):
            kind = part.get("type")
            if kind == "text":
                total += _count_str(part.get("text"), model)
            elif kind == "image_url":
                total += IMAGE_PART_TOKENS
    return total


def _count_str(value: Any, model: str) -> int:
    return count_text(value, model) if isinstance(value, str) else 0


def _count_json(value: Any, model: str) -> int:
    try:
        text = orjson.dumps(value, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        return 0
    return count_text(text, model)


def count_prompt(prompt: str | list, model: str) -> int:
    """Prompt tokens of a /v1/completions request: a string, a list of strings, a list of token
    ids, or a list of token-id lists."""
    return _count_text_or_ids(prompt, model)


def count_embedding_input(input: str | list, model: str) -> int:
    """Input tokens of a /v1/embeddings request (same shapes as a completions prompt)."""
    return _count_text_or_ids(input, model)


def _count_text_or_ids(value: Any, model: str) -> int:
    if isinstance(value, str):
        return count_text(value, model)
    if not isinstance(value, list):
        return 0
    total = 0
    for item in value:
        if isinstance(item, str):
            total += count_text(item, model)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += 1  # a token id in a flat id list
        elif isinstance(item, list):
            total += sum(1 for t in item if isinstance(t, int) and not isinstance(t, bool))
    return total
