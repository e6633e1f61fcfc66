"""A ``torch.optim`` optimizer (and scheduler) as an optax transformation: ``to_optax``.

Re-exported by ``jgd.torch_baseline``; the rules optax has in another form are in
``_torch_rules``; param groups are mapped onto a copy's params with ``jgd.models``' paths.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_IMPLEMENTATION = {"foreach", "fused", "capturable", "differentiable"}  # do not change the math
_RULES = {  # class name: the options whose math to_optax replays
    "SGD": {"lr", "momentum", "dampening", "weight_decay", "nesterov"},
    "Adam": {"lr", "betas", "eps", "weight_decay", "amsgrad", "decoupled_weight_decay"},
    "AdamW": {"lr", "betas", "eps", "weight_decay", "amsgrad"},
    "RMSprop": {"lr", "alpha", "eps", "weight_decay", "momentum", "centered"},
    "Adagrad": {"lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"},
    "NAdam": {"lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay"},
    "RAdam": {"lr", "betas", "eps", "weight_decay", "decoupled_weight_decay"},
    "Adamax": {"lr", "betas", "eps", "weight_decay"},
    "Adadelta": {"lr", "rho", "eps", "weight_decay"},
    "Rprop": {"lr", "etas", "step_sizes"},
    "ASGD": {"lr", "lambd", "alpha", "t0", "weight_decay"},  # t0: the average only
}
_NOT_REPLAYED = {  # torch optimizers to_optax refuses, and why
    "LBFGS": "it evaluates the loss several times per step (a closure), which one gradient per "
    "step cannot replay",
    "SparseAdam": "it updates sparse gradients only",
}


def to_optax(optimizer: Any, scheduler: Any = None, *, steps: int, module: Any = None) -> Any:
    """A ``torch.optim`` optimizer (and scheduler) as an optax transformation that replays it.

    ``jgd.fit(..., optimizer=to_optax(opt, sched, steps=T), order=order)`` takes the same steps as
    the torch loop ``opt.step(); sched.step()`` over the same batches. Supported: SGD (momentum,
    dampening, nesterov, weight_decay), Adam (betas, eps, weight_decay, amsgrad), AdamW, RMSprop
    (alpha, eps, centered, momentum, weight_decay), Adagrad (lr_decay,
    initial_accumulator_value, eps, weight_decay), NAdam (momentum_decay, decoupled weight decay),
    RAdam (decoupled weight decay), Adamax, Adadelta, Rprop (etas, step_sizes) and ASGD (lambd,
    alpha, weight_decay; the iterates, not torch's average ``ax``). The learning rates are read
    by stepping a copy of ``optimizer`` and ``scheduler`` ``steps`` times from their current
    state (so any
    scheduler stepped once per step works: LambdaLR, MultiStepLR, OneCycleLR, ...); after
    ``steps`` the last rate holds. Call it before training the torch side.

    Param groups (weight decay on the weights only, another rate for the head): give
    ``module=``, the torch module the groups' parameters belong to; each group's rule goes to
    the params of its copy (``jgd.models.from_torch(module)``: a ``TorchModule``'s or an MLP's),
    with ``optax.multi_transform``; a parameter in no group is not trained, as in torch.

    Each rule is made of optax pieces where optax has the same rule, by hand where it differs
    (``jgd/_torch_rules.py`` says where); docs/torch_optax.md lists them side by side.

    Args:
      optimizer: a fresh ``torch.optim`` optimizer (not yet stepped).
      scheduler: its ``torch.optim.lr_scheduler``, stepped once per step, or None.
      steps: the number of steps the rates are read for.
      module: the torch module the param groups' parameters belong to (several groups only).

    Returns:
      An ``optax.GradientTransformation`` for ``jgd.fit(optimizer=...)``.

    Raises:
      ValueError: several param groups without ``module=``, a group's parameter that the module
        does not hold, an optimizer that has already stepped, an option changed from its default
        that is not replayed (``maximize=True``), a scheduler that needs a metric
        (ReduceLROnPlateau) or belongs to another optimizer, ``steps`` < 1.
      TypeError: an optimizer class that is not supported.

    Examples:
      >>> import jax.numpy as jnp, torch
      >>> from jgd import torch_baseline
      >>> w = torch.nn.Parameter(torch.zeros(2))
      >>> tx = torch_baseline.to_optax(torch.optim.SGD([w], lr=0.1, momentum=0.9), steps=2)
      >>> state = tx.init(jnp.zeros(2))
      >>> first, state = tx.update(jnp.ones(2), state)
      >>> second, state = tx.update(jnp.ones(2), state)
      >>> (first + second).tolist()  # torch's two steps on gradient 1: -0.1, then -0.1 * 1.9
      [-0.29, -0.29]
    """
    import optax

    from jgd import _errors, _torch_rules

    steps = _errors.positive_int("steps", steps)
    name = type(optimizer).__name__
    if name in _NOT_REPLAYED:
        raise TypeError(f"optimizer={name} is not replayed by to_optax: {_NOT_REPLAYED[name]}.")
    if name not in _RULES or not hasattr(optimizer, "param_groups"):
        raise TypeError(
            f"optimizer={name} is not supported; to_optax replays torch.optim {sorted(_RULES)}."
        )
    groups = _checked_groups(optimizer, name)
    if len(groups) > 1 and module is None:
        raise ValueError(
            f"{name} has {len(groups)} param groups; pass module=, the torch module whose "
            "parameters they hold, so each group's rule goes to its params in the copy "
            "(jgd.models.from_torch(module))."
        )
    track = {"SGD": "momentum", "RMSprop": "momentum"}.get(name)
    if name in ("Adam", "AdamW", "NAdam", "RAdam", "Adamax"):
        track = "betas"
    rates, tracked = _schedule(optimizer, scheduler, steps, track)
    rules = [
        optax.chain(
            *_group_parts(name, group, scheduler, tracked[:, g] if tracked is not None else None),
            _torch_rules.scale_by_rates(_group_rates(name, group, rates[:, g], steps)),
        )
        for g, group in enumerate(groups)
    ]
    if module is None:
        return rules[0]
    return _by_group(rules, groups, module, name)


def _group_rates(name: str, group: dict, rates: np.ndarray, steps: int) -> np.ndarray:
    if name == "Adagrad":  # the rate decays as lr / (1 + (t - 1) lr_decay), t counted from 1
        return rates / (1 + np.arange(steps) * float(group["lr_decay"]))
    if name == "Rprop":  # its rule is the whole step; lr only set the first step size
        return np.ones(steps)
    if name == "ASGD":  # eta after step t: lr_t / (1 + λ lr_t t)^α; the first is lr
        import torch

        t = np.arange(1, steps)
        lam, alpha = float(group["lambd"]), float(group["alpha"])
        etas = np.concatenate([rates[:1], rates[:-1] / (1 + lam * rates[:-1] * t) ** alpha])
        if torch.get_default_dtype() == torch.float32:  # torch keeps eta as a float32 scalar
            etas = etas.astype(np.float32).astype(np.float64)
        return etas
    return rates


def _group_parts(name: str, group: dict, scheduler: Any, tracked: Any) -> list:
    """One param group's rule, before its learning rates are applied."""
    import optax

    from jgd import _torch_adaptive, _torch_rules

    varies = tracked is not None and bool(np.ptp(tracked) > 0)
    if varies and name in ("RMSprop", "NAdam", "RAdam", "Adamax"):
        raise ValueError(
            f"scheduler={type(scheduler).__name__} changes {name}'s momentum from step to step, "
            "which to_optax does not replay; pass cycle_momentum=False."
        )
    wd = float(group.get("weight_decay", 0.0))
    decay = [optax.add_decayed_weights(wd)] if wd else []
    if name == "SGD":
        mu, damp, nesterov = float(group["momentum"]), float(group["dampening"]), group["nesterov"]
        if not (mu or varies):
            rule = []
        elif damp or varies:
            rule = [_torch_rules.dampened_trace(tracked, damp, bool(nesterov))]
        else:
            rule = [optax.trace(decay=mu, nesterov=bool(nesterov))]
        return decay + rule
    if name in ("Adam", "AdamW"):
        b1, b2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        if group["amsgrad"] or varies:
            adam = _torch_rules.torch_adam(tracked, b2, eps, bool(group["amsgrad"]))
        else:
            adam = optax.scale_by_adam(b1, b2, eps)
        decoupled = name == "AdamW" or group.get("decoupled_weight_decay", False)
        return [adam, *decay] if decoupled else [*decay, adam]  # AdamW: p(1 - ηλ), after Adam
    if name == "RMSprop":
        kind = optax.scale_by_stddev if group["centered"] else optax.scale_by_rms
        scale = kind(decay=float(group["alpha"]), eps=float(group["eps"]), eps_in_sqrt=False)
        momentum = float(group["momentum"])
        return [*decay, scale] + ([optax.trace(decay=momentum)] if momentum else [])
    if name in ("NAdam", "RAdam", "Adamax"):
        b1, b2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        if name == "NAdam":
            rule = _torch_adaptive.torch_nadam(b1, b2, eps, float(group["momentum_decay"]))
        elif name == "RAdam":
            rule = _torch_adaptive.torch_radam(b1, b2, eps)
        else:
            rule = _torch_adaptive.torch_adamax(b1, b2, eps)
        decoupled = group.get("decoupled_weight_decay", False)
        return [rule, *decay] if decoupled else [*decay, rule]
    if name == "Rprop":
        first = float(group["lr"])  # torch sizes the first step by the rate it starts with
        return [_torch_adaptive.torch_rprop(first, group["etas"], group["step_sizes"])]
    if name == "ASGD":  # p ← p(1 − λη) − η(g + wd p): both decays on the old params
        return (
            [optax.add_decayed_weights(wd + float(group["lambd"]))] if wd or group["lambd"] else []
        )
    if name == "Adadelta":
        return [*decay, _torch_adaptive.torch_adadelta(float(group["rho"]), float(group["eps"]))]
    init = float(group["initial_accumulator_value"])  # Adagrad
    return [*decay, _torch_rules.torch_adagrad(init, float(group["eps"]))]


def _by_group(rules: list, groups: list, module: Any, name: str) -> Any:
    """``optax.multi_transform`` of the groups' rules over the copy's params, by path."""
    import jax
    import optax

    from jgd.models._torch import param_paths

    paths = param_paths(module)
    labels: dict[tuple[str, str], str] = {}
    for g, group in enumerate(groups):
        for p in group["params"]:
            if id(p) not in paths:
                raise ValueError(
                    f"{name}'s param group {g} holds a parameter of shape {tuple(p.shape)} that "
                    f"module={type(module).__name__} does not have; pass the module the "
                    "optimizer was built on."
                )
            for path in paths[id(p)]:
                labels[path] = str(g)

    def label_of(path: Any, _: Any) -> str:
        keys = tuple(str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey))
        return labels.get(keys[-2:], labels.get(keys[-1:], "untrained"))

    transforms = {str(g): rule for g, rule in enumerate(rules)}
    transforms["untrained"] = optax.set_to_zero()  # in no group: torch never steps it
    return optax.multi_transform(
        transforms, lambda params: jax.tree_util.tree_map_with_path(label_of, params)
    )


def _checked_groups(optimizer: Any, name: str) -> list[dict[str, Any]]:
    import inspect

    # SGD stores no "step": its momentum buffer (any state at all) says it has stepped
    if any(float(st.get("step", 1)) > 0 for st in optimizer.state.values() if st):
        raise ValueError(f"{name} has already taken steps; pass a fresh optimizer to to_optax.")
    defaults = {
        k: v.default for k, v in inspect.signature(type(optimizer).__init__).parameters.items()
    }
    for group in optimizer.param_groups:
        for key, value in group.items():
            if key == "params" or key in _RULES[name] or key in _IMPLEMENTATION:
                continue
            if key in defaults and value != defaults[key]:
                raise ValueError(f"{name}({key}={value!r}) is not supported by to_optax.")
    return optimizer.param_groups


def _schedule(
    optimizer: Any, scheduler: Any, steps: int, track: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Each step's learning rate per param group, shape (steps, groups), and each step's
    ``track`` (momentum, or β₁ of ``betas``), read off a copy of optimizer and scheduler stepped
    ``steps`` times."""
    import copy
    import warnings

    def tracked(group: dict[str, Any]) -> float:
        value = group[track]
        return float(value[0] if track == "betas" else value)

    groups = optimizer.param_groups
    if scheduler is None:
        rates = np.tile([float(g["lr"]) for g in groups], (steps, 1))
        fixed = None if track is None else np.tile([tracked(g) for g in groups], (steps, 1))
        return rates, fixed
    kind = type(scheduler).__name__
    if kind == "ReduceLROnPlateau" or not hasattr(scheduler, "get_last_lr"):
        raise ValueError(
            f"scheduler={kind} needs a metric to step (or is not a torch lr_scheduler); "
            "to_optax replays schedulers stepped once per step without arguments."
        )
    if scheduler.optimizer is not optimizer:
        raise ValueError(f"scheduler={kind} belongs to another optimizer than the one given.")
    opt, sched = copy.deepcopy((optimizer, scheduler))  # one deepcopy: sched keeps opt
    rates, other = np.empty((steps, len(groups))), np.zeros((steps, len(groups)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no gradients: opt.step() changes nothing
        for t in range(steps):
            for g, group in enumerate(opt.param_groups):
                rates[t, g] = float(group["lr"])
                other[t, g] = tracked(group) if track is not None else 0.0
            opt.step()
            sched.step()
    return rates, (other if track is not None else None)


__all__ = ["to_optax"]
