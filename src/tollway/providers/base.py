"""What every provider adapter speaks: the endpoints, and the request it asks the shared HTTP
client to send. Adapters are pure: no sockets, no framework objects, no logging."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Endpoint(StrEnum):
    CHAT = "/v1/chat/completions"
    COMPLETIONS = "/v1/completions"
    EMBEDDINGS = "/v1/embeddings"

    @property
    def streams(self) -> bool:
        return self is not Endpoint.EMBEDDINGS

    @property
    def upstream_suffix(self) -> str:
        return self.value.removeprefix("/v1")


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes
