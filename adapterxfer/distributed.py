"""Data parallelism over the processes of ``accelerate launch`` (or ``torchrun``): one group per launch.

``state()`` joins the launch's process group (NCCL on GPUs, gloo on CPU, no ``accelerate config``
needed); a plain ``python -m adapterxfer.cli ...`` is one process and every helper here is then a
no-op. Only trainable parameters' gradients travel (the base is frozen), as one flat all-reduce.
"""
from __future__ import annotations

import atexit
import functools
import os
import sys
from datetime import timedelta

import torch

#: How long a process waits for the others (the main process evaluates dev sets alone meanwhile).
TIMEOUT = timedelta(hours=2)


def world_size() -> int:
    """Processes of this launch (``WORLD_SIZE``, set by the launcher); 1 for a plain run."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def use_cpu() -> bool:
    """A launch on a machine without CUDA runs on CPU processes over gloo."""
    return world_size() > 1 and not torch.cuda.is_available()


@functools.cache
def state():
    """This process's accelerate ``PartialState``, joined to the launch's group (once per process); the
    group is taken down at exit, so that no process aborts on gloo's or NCCL's threads."""
    from accelerate import PartialState

    s = PartialState(cpu=use_cpu(), timeout=TIMEOUT)
    if s.num_processes > 1:
        atexit.register(lambda: torch.distributed.is_initialized() and torch.distributed.destroy_process_group())
    return s


def is_main() -> bool:
    return world_size() == 1 or state().is_main_process


def broadcast(value=None):
    """``value`` of the main process, on every process."""
    if world_size() == 1:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box)
    return box[0]


def _on_main(fn) -> tuple:
    """(``fn()``, None) on the main process, or (None, the message) where it raised a UserError; elsewhere
    (None, None)."""
    from .errors import UserError

    if not is_main():
        return None, None
    try:
        return fn(), None
    except UserError as e:
        return None, str(e)


def from_main(fn):
    """The main process's ``fn()`` on every process (only the main process calls ``fn``); its UserError
    stops every process, instead of leaving the others waiting on a process that is gone."""
    from .errors import UserError

    if world_size() == 1:
        return fn()
    value, error = broadcast(_on_main(fn))
    if error is not None:
        raise UserError(error)
    return value


def main_first(fn):
    """``fn()`` on the main process, then on the others (it fills the caches they read); its UserError
    stops every process."""
    from .errors import UserError

    if world_size() == 1:
        return fn()
    value, error = _on_main(fn)
    if (error := broadcast(error)) is not None:
        raise UserError(error)
    return value if is_main() else fn()


def total(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the processes."""
    if world_size() > 1:
        t = t.clone()
        torch.distributed.all_reduce(t)
    return t


def sum_gradients(params: list[torch.nn.Parameter]) -> None:
    """Sum the gradients of ``params`` over the processes in place, in one all-reduce; a parameter that
    no process gave a gradient keeps none (so that the optimizer skips it, as in a single process)."""
    if world_size() == 1:
        return
    device = params[0].device
    flat = torch.cat([p.grad.detach().float().flatten() if p.grad is not None else
                      torch.zeros(p.numel(), device=device) for p in params]
                     + [torch.tensor([float(p.grad is not None) for p in params], device=device)])
    torch.distributed.all_reduce(flat)
    offset = 0
    touched = flat[-len(params):]
    for p, seen in zip(params, touched.tolist()):
        p.grad = flat[offset:offset + p.numel()].view_as(p).to(p.dtype) if seen else None
        offset += p.numel()


def launch_command(processes: int) -> list[str]:
    """``accelerate launch`` of ``processes`` processes on this machine (its visible GPUs, or CPUs), on a
    free port, without ``accelerate config``; ``-m MODULE ARGS`` follow."""
    return launcher() + ["--num_processes", str(processes)]


def launcher() -> list[str]:
    """:func:`launch_command` without its number of processes."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
