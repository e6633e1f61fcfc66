"""A run's checkpoints: what ``fit`` saves after a chunk (state, guard, history) and how it resumes.

``Checkpoints`` (``_checkpoint``) is the folder: its lock, its marker, orbax. This module is the
run on top of it: the run's description (what a checkpoint belongs to, compared on resume), the
payload's layout, and the resume, in one process or several (process 0 writes and restores; the
others receive the state it restores, so every process resumes at one step).
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _modules, _parallel
from jgd._checkpoint import Checkpoints
from jgd._fingerprint import fingerprint
from jgd._guard import Stop

_FORMAT = 6  # the payload's layout and the description's; another format is another run
_REASONS = ("", "non-finite", "max_loss")
_RECORDING = (
    "has_aux",
    "record_params",
    "grad_norm",
    "update_norm",
    "sharpness_every",
    "noise_scale_every",
)


class RunCheckpoints:
    """``fit``'s checkpoints: what a run saves after a chunk, and how it resumes."""

    def __init__(self, directory: Any, config: Any, every: int):
        self.every, self.steps, self.mesh = every, config.plan.steps, config.mesh
        # several processes: process 0 writes and reads them; the state is replicated, and the
        # others receive what it restores
        self.store = None
        if jax.process_index() == 0:
            self.store = Checkpoints(directory, describe(config))

    def after_chunk(self, done: int, carry: Any, stop: Stop | None, outputs: list):
        """Saves when ``done`` is a multiple of ``every``, at the end, or at a stop."""
        due = done % self.every == 0 or done == self.steps or stop is not None
        if due and self.store is not None:
            self.store.save(done, _payload(carry, stop, outputs, self.steps))

    def resume(self, carry: Any, blank: dict) -> tuple[Any, Stop | None, list, int]:
        """``(carry, stop, outputs, done)`` from the newest checkpoint, or the fresh ones."""
        template = _payload(carry, None, [blank], self.steps)
        found = None
        if self.store is not None:  # a checkpoint of a shorter run holds its shorter history
            found = self.store.restore_latest(lambda n: _payload(carry, None, [blank], n))
        if found is not None:  # the history in this run's layout (every process's)
            history = [_pad_to(np.asarray(h), self.steps) for h in found[1]["history"]]
            found = (found[0], {**found[1], "history": history})
        if jax.process_count() > 1:  # every process resumes where process 0 does
            from jax.experimental import multihost_utils

            step = int(multihost_utils.broadcast_one_to_all(np.int64(found[0] if found else -1)))
            payload = multihost_utils.broadcast_one_to_all(found[1] if found else template)
            found = (step, jax.tree_util.tree_map(np.asarray, payload)) if step >= 0 else None
        if found is None:
            return carry, None, [], 0
        step, payload = found
        like = jax.tree_util.tree_leaves(carry)
        leaves = [_typed(jnp.asarray(x), t) for x, t in zip(payload["carry"], like, strict=True)]
        carry = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(carry), leaves)
        if self.mesh is not None:  # every process holds the whole (replicated) state
            carry = _parallel.put_replicated(carry, self.mesh)
        stopped, at, reason = (int(x) for x in payload["guard"])
        stop = Stop(at, _REASONS[reason]) if stopped else None
        history = jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure(blank), [np.asarray(h)[:step] for h in payload["history"]]
        )
        return carry, stop, [history], int(step)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def _local(tree: Any) -> Any:
    """The values this process holds: the whole array, or (an array spread over several
    processes) its own shards, which its own checkpoints belong to."""

    def local(a: Any) -> Any:
        if not isinstance(a, jax.Array) or a.is_fully_addressable or a.is_fully_replicated:
            return jax.device_get(a)
        shards = sorted(a.addressable_shards, key=lambda s: str(s.index))
        return [np.asarray(s.data) for s in shards]

    return jax.tree_util.tree_map(local, tree)


def describe(config: Any) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed by this call: what the run computes (its
    lowered program's digest: the loss, the optimizer, the recorders, whatever they close over),
    its batch plan and options, and the values it starts from: the state and every row of the
    data, by digest."""
    hyperparams = jax.tree_util.tree_map(float, config.optimizer.hyperparams)
    leaves = jax.tree_util.tree_leaves(config.state.params)
    step = config.step
    return {
        "format": _FORMAT,
        **config.plan.describe(),
        "program": config.digest(),
        "hparams": repr(hyperparams),
        "key": np.asarray(config.key).tolist(),
        "first_step": config.first_step,
        "start": fingerprint(jax.device_get(config.state)),
        "data": _data_digest(config),
        "mode": step.mode,
        "gradient options": dict(step.grad_options),
        "max_loss": config.options.max_loss,
        "guard": config.options.guard,
        **{name: getattr(config.options, name) for name in _RECORDING},
        "params": [[*np.shape(p), str(jnp.result_type(p))] for p in leaves],
        "model": _structure(config.state.params, config.state.model_state),
    }


_BLOCK_ROWS = 8192  # streamed data is digested in blocks of rows, never held whole


def _data_digest(config: Any) -> str:
    """A digest of every row of the run's data: on the device, or (streamed) read from the host
    in blocks, one pass over it."""
    host = config.stream
    if host is None:
        return fingerprint(_local(config.data))
    digest = hashlib.sha256()
    for start in range(0, host.m, _BLOCK_ROWS):
        rows = np.arange(start, min(start + _BLOCK_ROWS, host.m))
        for leaf in jax.tree_util.tree_leaves(host.read(rows)):
            digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()


def _structure(params: Any, model_state: Any) -> list:
    """A module's structure as its variables' paths, shapes and dtypes (``[]`` for params)."""
    if not isinstance(model_state, _modules.CARRIED):  # pure params: their shapes are above
        return []
    flat = jax.tree_util.tree_flatten_with_path({"param": params, "state": model_state})[0]
    return [f"{_modules.path_name(k)} {list(np.shape(x))} {x.dtype}" for k, x in flat]


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _plain(x: Any) -> Any:
    """A leaf orbax can write: a typed PRNG key (an ``nnx.Rngs`` stream's) by its data."""
    return jax.random.key_data(x) if _is_key(x) else x


def _typed(x: jax.Array, like: Any) -> jax.Array:
    """A restored leaf as the carry holds it (a typed key wrapped back from its data)."""
    return jax.random.wrap_key_data(x, impl=jax.random.key_impl(like)) if _is_key(like) else x


def _payload(carry: Any, stop: Stop | None, outputs: list, steps: int) -> dict:
    """A checkpoint: the run's carry (its state and its recorders' states, such as the last
    eigenvector) as flat leaves (orbax restores lists as lists), the guard's stop, and the
    history padded to ``steps``."""
    history = jax.tree_util.tree_map(lambda *xs: _pad_to(np.concatenate(xs), steps), *outputs)
    guard = [stop is not None, -1 if stop is None else stop.step, _reason_code(stop)]
    return {
        "carry": [_plain(x) for x in jax.tree_util.tree_leaves(carry)],
        "guard": [np.asarray(g, np.int32) for g in guard],
        "history": jax.tree_util.tree_leaves(history),
    }


def _reason_code(stop: Stop | None) -> int:
    return 0 if stop is None else _REASONS.index(stop.reason)


def _pad_to(array: np.ndarray, steps: int) -> np.ndarray:
    missing = steps - array.shape[0]
    if missing <= 0:
        return array[:steps]
    return np.concatenate([array, np.zeros((missing, *array.shape[1:]), array.dtype)])
