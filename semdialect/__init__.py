"""semdialect: SemanticDialect 4-bit block quantization — golden model, RTL, testbenches,
cycle/area/energy models and reports, in one installed package.

Layers (imports point down only)::

    semdialect.golden      the numbers (docs/SPEC.md)
    semdialect.config      the configuration dataclass     semdialect.designs  the design registry
    semdialect.rtl         Amaranth hardware
    semdialect.tb          Verilator/cocotb flow and testbenches
    semdialect.sim         cycle, area and energy models
    semdialect.evaluation  accuracy studies on real data
    semdialect.reports     plots and Markdown
    semdialect.cli         the ``semdialect`` command line
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("semdialect")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"
