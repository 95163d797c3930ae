"""tb.streams.OutputMonitor: the stream rule check every testbench relies on."""

from __future__ import annotations

import pytest

from semdialect.tb.streams import OutputMonitor


def test_transfers_only_when_valid_and_ready() -> None:
    m = OutputMonitor("o")
    assert m.transferred(0, None, True) is False  # nothing offered
    assert m.transferred(1, 0, True) is True  # a zero payload is a payload
    assert m.transferred(2, 7, False) is False  # offered, stalled
    assert m.transferred(3, 7, False) is False  # held while stalled
    assert m.transferred(4, 7, True) is True
    assert m.transferred(5, None, False) is False  # free to drop valid after the transfer


def test_payload_change_while_stalled_is_caught() -> None:
    m = OutputMonitor("y")
    m.transferred(0, 5, False)
    with pytest.raises(AssertionError, match=r"y.payload changed while stalled @1"):
        m.transferred(1, 6, True)


def test_valid_dropped_while_stalled_is_caught() -> None:
    m = OutputMonitor("o")
    m.transferred(0, 5, False)
    with pytest.raises(AssertionError, match=r"o.valid dropped before o.ready @1"):
        m.transferred(1, None, True)
