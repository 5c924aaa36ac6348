"""Connecting to Ray: a local Ray sized so that a pool of engines cannot starve Ray's own tasks, the running cluster,
or a cluster's address; and what the cluster offers each engine (one GPU, else a share of the CPUs)."""

from __future__ import annotations

from dataclasses import dataclass

from .engines import threads_per_engine

RESERVED_CPUS = 1  # logical CPUs no engine may hold: Ray Data's read and bookkeeping tasks run there
CLUSTER_CPUS_PER_ENGINE = 2  # a CPU engine's threads on a cluster's node


def require_ray():
    try:
        import ray
    except ModuleNotFoundError:
        raise RuntimeError("Ray is not installed: pip install 'talkinghead-nb[ray]' (or: pip install "
                           "'ray[data,serve]>=2.40'), on this machine and on every node of the cluster") from None
    return ray


def local_cpus(engines: int) -> int:
    """Logical CPUs of a local Ray for ``engines`` CPU engines: each gets its share of the cores (at least one), and
    ``RESERVED_CPUS`` more stay free. With exactly the cores (``ray.init(num_cpus=2)`` and two engines on two cores)
    the engines hold every CPU and Ray Data's read tasks wait forever."""
    return engines * threads_per_engine(engines) + RESERVED_CPUS


@dataclass(frozen=True)
class Connection:
    owned: bool  # this call started or joined Ray: ``close`` leaves it

    def close(self) -> None:
        if self.owned:
            require_ray().shutdown()


def connect(address: str, engines: int) -> Connection:
    """Connect this process to Ray: ``local`` starts one here (sized by :func:`local_cpus`), ``auto`` joins the
    running cluster or else starts one here, anything else is a cluster's address (``ray://head:10001`` or
    ``head:6379``). A Ray this process joined before is used as it is."""
    ray = require_ray()
    if ray.is_initialized():
        return Connection(owned=False)
    quiet = {"include_dashboard": False, "logging_level": "warning"}
    if address == "auto":
        try:
            ray.init(address="auto", **quiet)
            return Connection(owned=True)
        except ConnectionError:
            address = "local"
    if address == "local":
        start_local(engines, quiet)
        return Connection(owned=True)
    try:
        ray.init(address=address, **quiet)
    except ConnectionError as e:
        raise RuntimeError(f"no Ray cluster answers at {address} ({e}); start one with 'ray start --head' on its "
                           "head node, or pass --ray local") from None
    return Connection(owned=True)


def start_local(engines: int, options: dict, tries: int = 2) -> None:
    """A local Ray; a start that times out (its processes get too little CPU on a busy machine) is tried again."""
    ray = require_ray()
    for attempt in range(tries):
        try:
            ray.init(address="local", num_cpus=local_cpus(engines), **options)
            return
        except Exception as e:  # Ray raises a bare Exception when its node does not come up in time
            ray.shutdown()
            if "timed out during startup" not in str(e) or attempt == tries - 1:
                raise RuntimeError(f"Ray did not start on this machine ({e}); if the machine is busy, try again "
                                   "when it is quieter") from None


def on_this_machine() -> bool:
    """Whether the Ray this process joined is one node, this machine (its engines then share these cores)."""
    ray = require_ray()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return len(nodes) == 1 and nodes[0]["NodeManagerAddress"] == ray.util.get_node_ip_address()


@dataclass(frozen=True)
class EnginePlan:
    """How many engines, and what each asks of Ray."""

    engines: int
    cpus: float
    gpus: float
    threads: int | None  # torch's CPU threads per engine (None: a GPU engine, torch's default)

    def describe(self) -> str:
        each = f"{self.gpus:g} GPU" if self.gpus else f"{self.cpus:g} CPU"
        return f"{self.engines} engine(s) of {each} each"


def plan_engines(engines: int | None, device: str) -> EnginePlan:
    """One GPU per engine where the cluster has GPUs (and ``device`` allows them), by default as many engines as
    GPUs; else CPU engines of a share of the cores each (a Ray on this machine alone) or ``CLUSTER_CPUS_PER_ENGINE``
    (on a cluster), by default as many as fit beside ``RESERVED_CPUS``."""
    ray = require_ray()
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), resources.get("CPU", 0)
    if gpus and device != "cpu":
        return EnginePlan(engines or gpus, cpus=1, gpus=1, threads=None)
    local = on_this_machine()
    per_engine = threads_per_engine(engines or 1) if local else CLUSTER_CPUS_PER_ENGINE
    engines = engines or max(1, int((cpus - RESERVED_CPUS) // per_engine))
    return EnginePlan(engines, cpus=per_engine, gpus=0, threads=per_engine)


def check_capacity(plan: EnginePlan) -> None:
    """Refuse a plan the cluster cannot run with ``RESERVED_CPUS`` to spare, instead of a run that waits forever."""
    ray = require_ray()
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    need_cpus, need_gpus = plan.engines * plan.cpus + RESERVED_CPUS, plan.engines * plan.gpus
    if cpus < need_cpus or gpus < need_gpus:
        raise RuntimeError(f"this Ray cluster has {cpus:g} CPU(s) and {gpus:g} GPU(s); {plan.describe()} need "
                           f"{need_cpus:g} CPU(s) (one kept free for Ray's own tasks, else they starve and the run "
                           f"hangs) and {need_gpus:g} GPU(s): ask for fewer workers, add nodes, or use --ray local "
                           "(sized for this machine)")
