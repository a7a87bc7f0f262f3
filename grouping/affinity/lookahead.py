"""The lookahead of TAG eq. 1: the step the optimizer would take on the shared parameters from one task's
gradient, and every task's loss after it.

θ_{s|i} is what ``optimizer.step()`` would make of the shared parameters θ_s if the batch gradient were
task i's alone, w_i ∇_{θ_s} L_i (TAG §4.1 writes the SGD case, θ_{s|i} = θ_s − η ∇L_i, and notes the
construction holds for other optimizers). :func:`lookahead_updates` returns u_i = θ_s − θ_{s|i}; it reads
the optimizer's current state, so it matches the real step exactly:

- ``SGD`` (d = ±g + λθ, − under ``maximize``; μ momentum, τ dampening, b the buffer):
  no momentum: u = η d; first step: b' = d; later b' = μ b + (1 − τ) d; u = η (d + μ b') with Nesterov,
  else η b'. Every case is affine in g, u = a g + c with the same a and c for every task
  (:func:`sgd_steps`), which ``tag_first_order`` uses to skip forming the updates.
- ``Adam``/``AdamW`` (k = step + 1): m' = β₁ m + (1 − β₁) d, v' = β₂ v + (1 − β₂) d², v̂ = max(v_max, v')
  with ``amsgrad`` else v'; u = (η / (1 − β₁ᵏ)) m' / (√v̂ / √(1 − β₂ᵏ) + ε), where d = ±g + λθ (coupled L2,
  ``Adam``) or d = ±g and u gains η λ θ (decoupled decay, ``AdamW``).
- any other optimizer (or a subclass of these, whose ``step`` may differ): a real ``step()`` per task on
  the shared parameters, with every other parameter's gradient unset, after which the parameters, the
  gradients and the optimizer's state are put back exactly (:func:`stepped_updates`).

:func:`lookahead_losses` then writes θ_s − u_i into the shared parameters, calls the caller's closure
for every task's loss, and restores θ_s bit for bit. During each call every module's buffers (BatchNorm
running statistics and counters) are saved at the module's first forward and written back afterwards,
and the random generators' states restored, so a measurement changes neither the buffers nor what the
training draws next, and every lookahead forward starts from the same buffers and random state (e.g.
dropout masks).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Sequence

import torch

#: optimizers whose step is simulated (by exact type: a subclass may override ``step``)
SIMULATED = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


def lookahead_updates(
    optimizer: torch.optim.Optimizer, params: Sequence[torch.nn.Parameter], grads: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """For each shared parameter θ and its per-task step gradients ``grads[k]`` (T, *θ.shape), the
    per-task update u_i = θ − θ_{s|i} (T, *θ.shape) that one step of ``optimizer`` would apply."""
    if type(optimizer) is torch.optim.SGD:
        steps = sgd_steps(optimizer, params)
        return [scale * g + offset for (scale, offset), g in zip(steps, grads, strict=True)]
    if type(optimizer) in (torch.optim.Adam, torch.optim.AdamW):
        group_of = _groups(optimizer)
        decoupled_default = type(optimizer) is torch.optim.AdamW
        return [
            _adam_update(group_of[p], optimizer.state.get(p, {}), p.detach(), g, decoupled_default)
            for p, g in zip(params, grads, strict=True)
        ]
    return stepped_updates(optimizer, params, grads)


def sgd_steps(
    optimizer: torch.optim.SGD, params: Sequence[torch.nn.Parameter]
) -> list[tuple[float, torch.Tensor | float]]:
    """SGD's step is affine in the task's gradient: u_i = a g_i + c with the same (a, c) for every task
    (see the module docstring). Returns ``(a, c)`` per parameter, ``c`` 0.0 where it is zero."""
    group_of = _groups(optimizer)
    steps: list[tuple[float, torch.Tensor | float]] = []
    for p in params:
        group = group_of[p]
        lr, mu, tau, decay = (float(group[k]) for k in ("lr", "momentum", "dampening", "weight_decay"))
        sign = -1.0 if group["maximize"] else 1.0
        buf = optimizer.state.get(p, {}).get("momentum_buffer") if mu else None
        if not mu:
            k, extra = 1.0, None
        elif buf is None:  # the first step: b' = d
            k, extra = (1.0 + mu if group["nesterov"] else 1.0), None
        elif group["nesterov"]:
            k, extra = 1.0 + mu * (1.0 - tau), mu * mu * buf
        else:
            k, extra = 1.0 - tau, mu * buf
        offset: torch.Tensor | float = 0.0
        if decay:
            offset = (lr * k * decay) * p.detach()
        if extra is not None:
            offset = offset + lr * extra
        steps.append((lr * k * sign, offset))
    return steps


def _adam_update(
    group: dict, state: dict, theta: torch.Tensor, g: torch.Tensor, decoupled_default: bool
) -> torch.Tensor:
    lr, eps, decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
    beta1, beta2 = (float(b) for b in group["betas"])
    decoupled = group.get("decoupled_weight_decay", decoupled_default)
    d = -g if group["maximize"] else g
    if decay and not decoupled:
        d = d + decay * theta
    step = float(state["step"]) + 1.0 if state else 1.0
    m = (1 - beta1) * d
    v = (1 - beta2) * d * d
    if state:
        m = m + beta1 * state["exp_avg"]
        v = v + beta2 * state["exp_avg_sq"]
        if group["amsgrad"]:
            v = torch.maximum(state["max_exp_avg_sq"], v)
    denom = v.sqrt() / math.sqrt(1 - beta2**step) + eps
    update = (lr / (1 - beta1**step)) * m / denom
    if decay and decoupled:
        update = update + (lr * decay) * theta
    return update


def stepped_updates(
    optimizer: torch.optim.Optimizer, params: Sequence[torch.nn.Parameter], grads: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """u_i from a real ``optimizer.step()`` with ``params``' gradients set to task i's (``grads[k][i]``)
    and every other parameter's unset; parameters, gradients and optimizer state are restored after."""
    everything = [p for group in optimizer.param_groups for p in group["params"]]
    saved_grads = [p.grad for p in everything]
    saved_values = [p.detach().clone() for p in params]
    saved_state = {p: copy.deepcopy(s) for p, s in optimizer.state.items()}
    updates = [torch.empty_like(g) for g in grads]
    try:
        for i in range(grads[0].shape[0] if grads else 0):
            for p in everything:
                p.grad = None
            for p, g in zip(params, grads, strict=True):
                p.grad = g[i].to(p.dtype).clone()
            optimizer.step()
            with torch.no_grad():
                for p, before, u in zip(params, saved_values, updates, strict=True):
                    u[i] = before - p
                    p.copy_(before)
            optimizer.state.clear()
            optimizer.state.update({p: copy.deepcopy(s) for p, s in saved_state.items()})
    finally:
        with torch.no_grad():
            for p, before in zip(params, saved_values, strict=True):
                p.copy_(before)
        for p, grad in zip(everything, saved_grads, strict=True):
            p.grad = grad
        optimizer.state.clear()
        optimizer.state.update(saved_state)
    return updates


def lookahead_losses(
    params: Sequence[torch.nn.Parameter],
    updates: Sequence[torch.Tensor],
    losses: Callable[[], torch.Tensor],
) -> torch.Tensor:
    """L[i, j] = L_j(θ_s − u_i): ``losses()`` (every task's loss, a (T,) tensor, on the batch the
    lookahead is measured on) with task i's update applied to the shared ``params``; heads and other
    parameters unchanged (TAG eq. 1's numerator). Every call starts from the same buffers and random
    state; ``params`` hold θ_s again on return."""
    saved = [p.detach().clone() for p in params]
    rows = []
    try:
        with torch.no_grad(), side_effects_undone(params) as rewind:
            for i in range(updates[0].shape[0] if updates else 0):
                for p, theta, u in zip(params, saved, updates, strict=True):
                    p.copy_(theta - u[i])
                rewind()
                rows.append(losses())
    finally:
        with torch.no_grad():
            for p, theta in zip(params, saved, strict=True):
                p.copy_(theta)
    return torch.stack(rows)


@contextlib.contextmanager
def side_effects_undone(params: Sequence[torch.Tensor]) -> Iterator[Callable[[], None]]:
    """Within the block, every module that runs a forward pass has its buffers saved at its first
    forward; on leaving, those buffers and the random generators of the CPU and of the devices of
    ``params`` are put back as they were on entering. Yields ``rewind()``, which does the same
    inside the block (so that several forwards start from the same state)."""
    saved: dict[int, tuple[torch.nn.Module, dict[str, torch.Tensor]]] = {}

    def keep(module: torch.nn.Module, args: object) -> None:
        if id(module) not in saved:
            buffers = {n: b.detach().clone() for n, b in module._buffers.items() if b is not None}
            saved[id(module)] = (module, buffers)

    devices = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
    cpu_state = torch.get_rng_state()
    device_states = [torch.cuda.get_rng_state(d) for d in devices]

    def rewind() -> None:
        torch.set_rng_state(cpu_state)
        for device, state in zip(devices, device_states, strict=True):
            torch.cuda.set_rng_state(state, device)
        with torch.no_grad():
            for module, buffers in saved.values():
                for name, value in buffers.items():
                    module._buffers[name].copy_(value)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(keep)
    try:
        yield rewind
    finally:
        handle.remove()
        rewind()


def _groups(optimizer: torch.optim.Optimizer) -> dict[torch.Tensor, dict]:
    return {p: group for group in optimizer.param_groups for p in group["params"]}
