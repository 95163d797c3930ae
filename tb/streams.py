"""Stream-protocol checks shared by the testbenches (cocotb on Verilator and amaranth.sim).

Amaranth's ``lib.stream`` rule for a producer: once ``valid`` is offered it stays high, and the
payload holds, until the consumer's ``ready`` takes it. :class:`OutputMonitor` checks that rule
on an output the testbench back-pressures at random, cycle by cycle, and says when a payload
is transferred. It only sees plain values, so both simulators use it.
"""

from __future__ import annotations

__all__ = ["OutputMonitor"]


class OutputMonitor:
    """Checks one output stream of the design under test (see the module docstring).

    Call :meth:`transferred` once per cycle, after the testbench has set ``ready`` for the
    cycle and the design's ``valid``/``payload`` have settled, before the clock edge.
    """

    def __init__(self, name: str = "o") -> None:
        self.name = name
        self._offered: int | None = None  # payload offered but not taken in an earlier cycle

    def transferred(self, cycle: int, payload: int | None, ready: bool) -> bool:
        """True when ``payload`` (None: ``valid`` low) is taken this cycle; an
        ``AssertionError`` naming the cycle when the producer broke the rule."""
        name = self.name
        if payload is None:
            assert self._offered is None, f"{name}.valid dropped before {name}.ready @{cycle}"
            return False
        assert self._offered is None or payload == self._offered, (
            f"{name}.payload changed while stalled @{cycle}")
        self._offered = None if ready else payload
        return ready
