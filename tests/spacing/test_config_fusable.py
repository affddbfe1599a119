"""Which method configs can share a training trajectory (a fused group), and in which keys their cells may differ."""

from __future__ import annotations

import pytest

from spacing.config import method_schemas, to_config
from tests.helpers import compose_config

FUSABLE_KEYS = {"ema": ("interval", "decay", "schedule", "control"), "online_kd": ("interval", "schedule")}
"""EMA's shadow never feeds back into training; online KD's teacher learns from cross-entropy alone."""


@pytest.mark.parametrize("name", sorted(method_schemas()))
def test_only_ema_and_online_kd_fuse_and_only_in_their_refresh_keys(name: str) -> None:
    schema = method_schemas()[name]
    assert schema.fusable_keys == FUSABLE_KEYS.get(name, ())
    method = to_config(compose_config([f"method={name}"])).method
    assert method.fusable() is (name in FUSABLE_KEYS)
    assert all(not isinstance(getattr(method, key), dict) for key in schema.fusable_keys)  # plain values under method.


def test_online_kd_whose_replays_move_the_teachers_batchnorm_does_not_fuse() -> None:
    method = to_config(compose_config(["method=online_kd", "method.replay_teacher_bn=true"])).method
    assert not method.fusable()
    assert not to_config(compose_config(["method=online_kd", "faithful=paper"])).method.fusable()  # the paper's teacher did
