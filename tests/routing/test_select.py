from __future__ import annotations

import random
from collections import Counter

from tollway.routing.select import candidates, pick_channel
from tollway.snapshot.model import ChannelView, Snapshot


def chan(cid: int, priority: int = 0, weight: int = 1) -> ChannelView:
    return ChannelView(
        id=cid,
        name=f"ch{cid}",
        type="openai",
        base_url="http://127.0.0.1:9/v1",
        credential=None,
        models=frozenset({"m"}),
        model_mapping={},
        groups=frozenset({"default"}),
        priority=priority,
        weight=weight,
    )


def draws(channels: tuple[ChannelView, ...], n: int = 10_000, seed: int = 7) -> Counter[int]:
    rng = random.Random(seed)
    picked: Counter[int] = Counter()
    for _ in range(n):
        channel = pick_channel(channels, rng)
        assert channel is not None
        picked[channel.id] += 1
    return picked


def test_no_channels() -> None:
    assert pick_channel(()) is None
    assert pick_channel((), random.Random(1)) is None


def test_single_channel_is_always_picked() -> None:
    only = chan(1, weight=5)
    assert draws((only,), n=100) == Counter({1: 100})


def test_only_the_highest_priority_tier_is_used() -> None:
    # Sorted highest first, as the snapshot builder stores them.
    channels = (
        chan(1, priority=10),
        chan(2, priority=10, weight=3),
        chan(3, priority=5, weight=1000),
        chan(4, priority=0),
    )
    picked = draws(channels, n=2_000)
    assert set(picked) == {1, 2}


def test_a_lone_top_channel_wins_whatever_the_lower_weights() -> None:
    channels = (chan(1, priority=2, weight=1), chan(2, priority=1, weight=10**6), chan(3, priority=1, weight=10**6))
    assert draws(channels, n=500) == Counter({1: 500})


def test_weights_are_respected() -> None:
    picked = draws((chan(1, weight=1), chan(2, weight=3)))
    share = picked[1] / 10_000
    assert 0.22 <= share <= 0.28
    assert picked[1] + picked[2] == 10_000


def test_three_way_weights() -> None:
    picked = draws((chan(1, weight=1), chan(2, weight=2), chan(3, weight=7)), seed=99)
    assert 0.07 <= picked[1] / 10_000 <= 0.13
    assert 0.17 <= picked[2] / 10_000 <= 0.23
    assert 0.66 <= picked[3] / 10_000 <= 0.74


def test_equal_weights_are_roughly_even() -> None:
    picked = draws((chan(1, priority=3, weight=4), chan(2, priority=3, weight=4)), seed=3)
    assert 0.47 <= picked[1] / 10_000 <= 0.53


def test_the_same_seed_gives_the_same_choices() -> None:
    channels = (chan(1), chan(2), chan(3))
    assert draws(channels, n=300, seed=5) == draws(channels, n=300, seed=5)
    assert draws(channels, n=300, seed=5) != draws(channels, n=300, seed=6)


def test_candidates_looks_up_group_and_model() -> None:
    a, b = chan(1, priority=2), chan(2)
    snapshot = Snapshot(version=3, routes={("default", "m"): (a, b), ("vip", "m"): (b,)})
    assert candidates(snapshot, "default", "m") == (a, b)
    assert candidates(snapshot, "vip", "m") == (b,)
    assert candidates(snapshot, "default", "other") == ()
    assert candidates(snapshot, "nobody", "m") == ()
