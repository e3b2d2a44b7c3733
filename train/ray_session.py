"""The Ray session shared by the Ray backends (``llmsched-eval --backend ray``, RLlib training):
Ray imported with a clear error when the extra is missing, and one way to start or join a cluster.
Ray is imported only when these functions run."""

from __future__ import annotations

from typing import Any

from llmsched_env.sim.validation import ConfigError


def import_ray() -> Any:
    """Ray, or a clear error when the extra is not installed."""
    try:
        import ray
    except ImportError as err:
        raise ConfigError(f'backend=ray needs Ray ({err}): install the extra, pip install -e ".[ray]"') from None
    return ray


def init(address: str | None, num_cpus: int | None) -> bool:
    """Join the cluster at ``address`` or start a local Ray with ``num_cpus`` CPUs (None: all);
    returns whether this call started the session (and so should end it)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except ConnectionError as err:
        raise ConfigError(
            f"ray_address={address!r}: cannot connect ({' '.join(str(err).split())}); expected the address of a running "
            "Ray cluster (auto: the one `ray start` runs on this machine), or none for a local Ray"
        ) from None
    return True
