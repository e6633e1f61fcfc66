"""Data-parallel descent over a ``jax.sharding.Mesh``: nothing home-made, XLA does the work.

With ``fit(..., mesh=mesh)`` the params and optimizer state are replicated on every device, and
each batch is sharded along its example axis over the mesh's data axis: full-batch data is placed
sharded once; for shuffled or explicit plans the data is replicated and every gathered batch is
constrained (``jax.lax.with_sharding_constraint``) to the sharded layout. XLA's SPMD partitioner
then splits the forward and backward passes by examples and inserts the all-reduce that sums the
gradient. The same code runs on one CPU, on ``--xla_force_host_platform_device_count=N`` fake
devices, on GPUs, and across hosts after ``jax.distributed.initialize()``.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jgd import _errors


def data_mesh(devices: Any = None, axis: str = "data") -> Mesh:
    """A one-axis mesh over ``devices`` (default: all of ``jax.devices()``).

    Examples:
      >>> import jgd
      >>> mesh = jgd.data_mesh()
      >>> mesh.axis_names
      ('data',)
    """
    devices = list(jax.devices() if devices is None else devices)
    auto = (jax.sharding.AxisType.Auto,)  # let XLA's partitioner place the intermediates
    return jax.make_mesh((len(devices),), (axis,), devices=devices, axis_types=auto)


def auto(mesh: Any) -> Mesh:
    """``mesh`` with every axis Auto: the same devices, axis names and shape.

    ``jax.make_mesh`` builds Explicit axes by default; under them every traced op must say how its
    output is sharded (a loss that gathers the label's logit would need ``out_sharding=``), which
    a user's loss cannot be asked to do. jgd places its arrays itself and lets XLA's partitioner
    place the intermediates, so it runs every mesh as its Auto twin; inside or outside
    ``jax.set_mesh``, the numbers are the same.

    Examples:
      >>> import jax
      >>> mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
      >>> auto(mesh).axis_types == (jax.sharding.AxisType.Auto,)
      True
    """
    axis_of(mesh)
    return _auto_twin(mesh)


def _auto_twin(mesh: Any) -> Any:
    kind = jax.sharding.AxisType.Auto
    if all(t == kind for t in getattr(mesh, "axis_types", (kind,))):
        return mesh
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(kind,) * len(mesh.axis_names))


def auto_arrays(tree: Any) -> Any:
    """``tree`` with every array sharded on a mesh of Explicit (or Manual) axes re-labelled onto
    that mesh's Auto twin (``auto``), without a copy: the same shards on the same devices.

    A global array built on ``jax.make_mesh``'s mesh carries Explicit axes in its type, which the
    Auto context jgd runs in refuses ("context mesh ... should match the aval mesh"); across
    processes it cannot be ``device_put`` (not every shard is addressable), so it is rebuilt
    from its own local shards (``jax.make_array_from_single_device_arrays``).
    """

    def relabel(leaf: Any) -> Any:
        sharding = getattr(leaf, "sharding", None)
        if not isinstance(leaf, jax.Array) or not isinstance(sharding, NamedSharding):
            return leaf
        twin = _auto_twin(sharding.mesh)
        if twin is sharding.mesh or not isinstance(sharding.mesh, Mesh):
            return leaf
        shards = [shard.data for shard in leaf.addressable_shards]
        return jax.make_array_from_single_device_arrays(
            leaf.shape, NamedSharding(twin, sharding.spec), shards
        )

    return jax.tree_util.tree_map(relabel, tree)


def within(mesh: Any) -> Any:
    """A context in which jgd traces and runs for ``mesh``: its Auto twin as the current mesh
    (a user's ``jax.set_mesh`` of Explicit axes would otherwise clash with jgd's arrays)."""
    if not isinstance(mesh, Mesh):
        return contextlib.nullcontext()
    return jax.set_mesh(auto(mesh))


def on_mesh(fn: Any) -> Any:
    """Runs ``fn`` (``fit``, ``sweep``) inside ``within(mesh)`` for its ``mesh=`` argument."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with within(kwargs.get("mesh")):
            return fn(*args, **kwargs)

    return wrapper


def axis_of(mesh: Any) -> str:
    """The mesh axis batches are split over: ``"data"`` if it has one, else its first axis."""
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"mesh={_errors.describe(mesh)} is not a jax.sharding.Mesh; build one with "
            "jgd.data_mesh() or jax.make_mesh((n,), ('data',))."
        )
    return "data" if "data" in mesh.axis_names else mesh.axis_names[0]


def check_divisible(mesh: Mesh, batch_size: int, what: str = "batch_size") -> None:
    """Raises unless ``batch_size`` splits evenly over the mesh's data axis."""
    axis = axis_of(mesh)
    n = mesh.shape[axis]
    if batch_size % n:
        raise ValueError(
            f"{what}={batch_size} cannot be split evenly over the {n} devices of the mesh's "
            f"'{axis_of(mesh)}' axis; use a multiple of {n} (e.g. {max(n, batch_size // n * n)}), "
            "or mesh=None to run on one device."
        )


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def by_examples(mesh: Mesh) -> NamedSharding:
    """Leading (example) axis split over the data axis, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(axis_of(mesh)))


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))


def put_by_examples(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, by_examples(mesh))


def shard_batch(batch: Any, mesh: Mesh | None) -> Any:
    """Inside the program: constrain a gathered batch to be split by examples (``mesh``: Auto)."""
    if mesh is None:
        return batch
    return jax.lax.with_sharding_constraint(batch, by_examples(mesh))
