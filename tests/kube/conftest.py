"""The stand-in for notification-controller's receiver server, for the Receiver tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.receiver_standin import StandIn, serving


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    with serving(StandIn()) as answering:
        yield answering
