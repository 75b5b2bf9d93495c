"""Channel selection: the highest-priority tier among enabled channels that serve the
(group, model), weighted random inside that tier. Failover and health come later and will
wrap this, so it stays a pure function of the snapshot."""

from __future__ import annotations

import random

from tollway.snapshot.model import ChannelView, Snapshot


def candidates(snapshot: Snapshot, group: str, model: str) -> tuple[ChannelView, ...]:
    return snapshot.routes.get((group, model), ())


def pick_channel(channels: tuple[ChannelView, ...], rng: random.Random | None = None) -> ChannelView | None:
    """`channels` is sorted by priority, highest first (see snapshot/builder.py)."""
    if len(channels) < 2:
        return channels[0] if channels else None
    top = channels[0].priority
    tier = [c for c in channels if c.priority == top]
    if len(tier) == 1:
        return tier[0]
    return (rng or random).choices(tier, weights=[c.weight for c in tier], k=1)[0]
