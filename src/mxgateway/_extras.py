"""The optional extras' packages, checked where a feature needs them.

``mxgateway[sim]`` (grpcio-health-checking, grpcio-reflection, h2) is what the simulator needs
beyond the client library. ``require_sim()`` raises an ImportError that names the pip command
rather than the first module Python could not find.
"""

from __future__ import annotations

from importlib.util import find_spec

__all__ = ["SIM_INSTALL", "missing_sim_packages", "require_sim"]

SIM_INSTALL = 'pip install "mxgateway[sim]"'

# Module each package installs -> the distribution to name in a message.
_SIM_MODULES = {
    "grpc_health": "grpcio-health-checking",
    "grpc_reflection": "grpcio-reflection",
    "h2": "h2",
}


def missing_sim_packages() -> list[str]:
    """The simulator's packages that are not installed (distribution names)."""
    return [dist for module, dist in _SIM_MODULES.items() if find_spec(module) is None]


def require_sim() -> None:
    """Raise ImportError naming ``pip install "mxgateway[sim]"`` unless the extra is installed."""
    missing = missing_sim_packages()
    if missing:
        raise ImportError(
            f"mxgateway.sim needs {', '.join(missing)}, which the client does not: {SIM_INSTALL}",
            name="mxgateway.sim",
        )
