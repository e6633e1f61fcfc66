"""Several processes agree on the run before the first step, or every one stops with the reason.

Each process of a ``jax.distributed`` run computes what it was asked to run (options, batch plan,
the shapes of its own share of the data and of the params, the optimizer's numbers, the key, and
the digest of the run's lowered program) and publishes it in the coordinator's key-value store,
then reads every other process's within a timeout. A difference is a ``ValueError`` in every
process, naming the part and the processes; a process that never publishes is a
``ProcessLostError`` naming it once the timeout has passed. Nothing here is a collective (a
collective over processes that disagree on shapes aborts in gloo, and one a process never joins
hangs), hence the store. jax has no public key-value API; orbax reads the same client
(``orbax.checkpoint.multihost``), and so does this module.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax

from jgd._errors import ProcessLostError

TIMEOUT_ENV = "JGD_PROCESS_TIMEOUT"  # seconds a process waits for the others (default below)
DEFAULT_TIMEOUT = 120.0
_calls = {"count": 0}  # the runs this process has agreed on: the store's keys are per run


def timeout() -> float:
    """The seconds to wait for the other processes: ``$JGD_PROCESS_TIMEOUT`` or 120."""
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"${TIMEOUT_ENV}={text!r} is not valid; expected seconds > 0.")
    return value


def _client() -> Any:
    from jax._src import distributed  # see the module docstring

    client = distributed.global_state.client
    if client is None:
        raise RuntimeError(
            "this run spans several processes but jax.distributed's client is not there; call "
            "jax.distributed.initialize() first."
        )
    return client


def agree(stage: str, parts: dict[str, Any]) -> None:
    """Publishes ``parts`` (JSON-able) and checks every other process's; one process: nothing.

    Raises:
      ValueError: a part differs between processes (every process raises it).
      ProcessLostError: a process did not publish within the timeout.
    """
    count = jax.process_count()
    if count == 1:
        return
    _calls["count"] += 1
    client, me, wait = _client(), jax.process_index(), timeout()
    mine = json.dumps(parts, default=str)  # in the parts' order: the most telling first
    prefix = f"jgd/agree/{_calls['count']}/{stage}"
    client.key_value_set(f"{prefix}/{me}", mine)
    everyone = {}
    for other in range(count):
        if other == me:
            continue
        try:
            text = client.blocking_key_value_get(f"{prefix}/{other}", int(wait * 1000))
        except Exception as e:  # jax raises its own runtime error type for a timeout
            raise ProcessLostError(
                f"process {me} of {count}: process {other} did not reach this run's start "
                f"within {wait:g} s (${TIMEOUT_ENV}); it died, was never started or is running "
                f"another program ({type(e).__name__})."
            ) from None
        everyone[other] = json.loads(text)
    _compare(everyone, json.loads(mine), me)  # the first part that differs is named


def _compare(everyone: dict[int, dict], mine: dict, me: int) -> None:
    for name in mine:
        values = {p: parts.get(name) for p, parts in everyone.items()}
        values[me] = mine.get(name)
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            shown = "; ".join(f"process {p}: {_short(v)}" for p, v in sorted(values.items()))
            raise ValueError(
                f"the processes of this run disagree on {name} ({shown}); every process must "
                "run the same fit with the same arguments (its own share of the data, of one "
                "shape)."
            )


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def arguments(loss: Any, params: Any, data: Any, optimizer: Any, learning_rate: Any, key: Any,
              options: Any) -> dict[str, Any]:  # fmt: skip
    """What a process was asked to run, before anything is computed: the parts ``agree`` checks
    first (no collective has run yet: one over shapes that differ would abort)."""
    from jgd import _modules
    from jgd._fingerprint import fingerprint

    if _modules.is_module(params):
        params = _modules.split(params)[0]

    def shapes(tree: Any) -> list:
        return [_local_shape(x) for x in jax.tree_util.tree_leaves(tree)]

    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    return {  # the most telling first: a width that differs changes the loss too
        "data (this process's share)": shapes(data),
        "params": shapes(params),
        "learning_rate": fingerprint(learning_rate),
        "key": fingerprint(key),
        "options": fingerprint(fields),
        "optimizer": fingerprint(optimizer),
        "loss": fingerprint(loss),
    }


def _local_shape(x: Any) -> list:
    shards = getattr(x, "addressable_shards", None)
    if shards is not None and not getattr(x, "is_fully_replicated", True):
        shape = [list(s.data.shape) for s in shards]
    else:
        shape = list(getattr(x, "shape", ()))
    return [shape, str(getattr(x, "dtype", type(x).__name__))]
