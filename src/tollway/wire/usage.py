"""Token usage as every layer sees it, whatever wire format it came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REPORTED = "reported"  # the upstream said so
ESTIMATED = "estimated"  # counted by Tollway with a BPE tokenizer
NONE = "none"  # nothing to count (the request failed before the upstream produced anything)


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    source: str = REPORTED


def usage_from_openai(data: Any) -> Usage | None:
    """Read an OpenAI `usage` object; None when absent or malformed (then we estimate)."""
    if not isinstance(data, dict):
        return None
    prompt = data.get("prompt_tokens")
    if not isinstance(prompt, int):
        return None
    completion = data.get("completion_tokens") or 0
    details = data.get("prompt_tokens_details")
    cached = details.get("cached_tokens") or 0 if isinstance(details, dict) else 0
    if not isinstance(completion, int) or not isinstance(cached, int):
        return None
    if prompt < 0 or completion < 0 or cached < 0:
        return None  # nonsense we must not turn into a credit
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=min(cached, prompt))
