"""Data-parallel training on PyTorch's own engine (torch.distributed), started by torchrun or not.

``session(device)`` reads the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR/PORT), joins the process group with gloo on CPU or nccl on GPU,
gives each process its own device and leaves the group when training ends, however it ends.
Started without torchrun it is a world of one: no process group, every collective a no-op, so a
trainer has one code path.

A trainer adopts it in four moves:

    with distributed.session(args.device, threads) as dist:
        model = dist.wrap(model.to(dist.device))      # DistributedDataParallel when world > 1
        ... only dist.main writes checkpoints, logs and progress bars ...
        stop, evaluate = dist.agree(time_is_up, time_to_evaluate)  # rank 0 decides, all follow
        loss = loss_sum * dist.world / dist.all_sum(local_count)   # a mean over the global batch

Time-based decisions (the deadline, when to validate) must go through ``agree``: two processes
reading their own clocks will disagree one step, and the one that stops first leaves the other
waiting forever in a collective.

torch is imported inside the functions that train: the command line imports ``rank`` and
``default_threads`` from here, and it starts without torch.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

from livegen.errors import UserError

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def resolve_device(name: str, local_rank: int = 0):
    """``auto`` | ``cpu`` | ``cuda`` -> this process's torch.device (one GPU per process)."""
    import torch  # only when training: the CLI imports rank() here

    if name not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device is auto, cpu or cuda, not {name!r}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError("--device cuda, but torch sees no CUDA GPU here (a CPU-only torch, or no driver); "
                        "use --device cpu")
    if local_rank >= torch.cuda.device_count():
        raise UserError(f"process {local_rank} on this node has no GPU of its own ({torch.cuda.device_count()} "
                        "here): start torchrun with --nproc_per_node at most the number of GPUs")
    return torch.device("cuda", local_rank)


def default_threads(local_world: int | None = None) -> int:
    """CPU threads per process: the machine's cores shared by the processes on this node."""
    local_world = local_world or int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, local_world))


@dataclass
class Session:
    rank: int
    world: int
    local_rank: int
    device: object  # torch.device
    backend: str | None  # None: a world of one, no process group

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, logs and progress bars."""
        return self.rank == 0

    @property
    def mixed_precision(self) -> bool:
        """bfloat16 autocast on GPUs that have it (Ampere and later). Older GPUs and CPUs train in
        float32: float16 would need loss scaling, which a WGAN-GP's double backward does not take well."""
        import torch  # only when training: the CLI imports rank() here

        return self.device.type == "cuda" and torch.cuda.is_bf16_supported()

    def autocast(self):
        """Mixed precision for a forward pass (not the backward); a no-op where ``mixed_precision`` is off."""
        import torch  # only when training: the CLI imports rank() here

        if not self.mixed_precision:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)

    def wrap(self, module):
        """DistributedDataParallel around ``module`` (already on ``device``) when world > 1.

        DDP averages gradients across processes during backward and starts every process from
        rank 0's weights. Keep a reference to the bare module for checkpoints (or ``unwrap``)."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel  # only when training: the CLI imports rank() here

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    @staticmethod
    def unwrap(module):
        return getattr(module, "module", module)

    def no_sync(self, module):
        """While accumulating gradients over micro-batches: skip DDP's all-reduce but for the last one."""
        return module.no_sync() if hasattr(module, "no_sync") else contextlib.nullcontext()

    def broadcast_parameters(self, module) -> None:
        """Rank 0's weights everywhere (for models trained without ``wrap``; see ``average_gradients``)."""
        if self.world == 1:
            return
        import torch.distributed as dist  # only when training: the CLI imports rank() here

        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)

    def average_gradients(self, parameters) -> None:
        """Average gradients across processes in one flat all-reduce: DDP's arithmetic, for losses that
        DDP cannot wrap (a WGAN-GP critic's double backward, submodules called several times a step)."""
        if self.world == 1:
            return
        import torch  # only when training: the CLI imports rank() here
        import torch.distributed as dist  # only when training: the CLI imports rank() here

        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def all_sum(self, value: float) -> float:
        """The sum of ``value`` over processes (e.g. target tokens of the global batch)."""
        if self.world == 1:
            return float(value)
        import torch  # only when training: the CLI imports rank() here
        import torch.distributed as dist  # only when training: the CLI imports rank() here

        t = torch.tensor([float(value)], dtype=torch.float64, device=self._collective_device)
        dist.all_reduce(t)
        return float(t.item())

    def agree(self, *flags: bool) -> tuple[bool, ...]:
        """Rank 0's flags, on every process: decisions taken by one clock."""
        if self.world == 1:
            return tuple(bool(f) for f in flags)
        import torch  # only when training: the CLI imports rank() here
        import torch.distributed as dist  # only when training: the CLI imports rank() here

        t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int32, device=self._collective_device)
        dist.broadcast(t, src=0)
        return tuple(bool(v) for v in t.tolist())

    def barrier(self) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist  # only when training: the CLI imports rank() here

        if self.backend == "nccl":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    @property
    def _collective_device(self):
        return self.device if self.backend == "nccl" else "cpu"


def launched_by_torchrun() -> bool:
    return all(v in os.environ for v in TORCHRUN_VARS)


def rank() -> int:
    """This process's rank before (or without) a session: 0 unless torchrun says otherwise."""
    return int(os.environ.get("RANK", "0"))


@contextlib.contextmanager
def session(device: str = "auto", threads: int | None = None):
    """Join the torchrun process group (if any) on ``device``; always leave it on the way out."""
    import torch  # only when training: the CLI imports rank() here

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not launched_by_torchrun():
        raise UserError("WORLD_SIZE is set but not RANK/LOCAL_RANK/MASTER_ADDR/MASTER_PORT: "
                        "start several processes with torchrun --nproc_per_node N -m livegen train ...")
    rank_ = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    torch.set_num_threads(threads or default_threads())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = None
    if world > 1:
        import torch.distributed as dist  # only when training: the CLI imports rank() here

        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30), **kwargs)
    finished = False
    try:
        yield Session(rank_, world, local_rank, dev, backend)
        finished = True
    finally:
        if backend is not None:
            import torch.distributed as dist  # only when training: the CLI imports rank() here

            if dist.is_initialized():
                if finished:  # gloo aborts a process tearing down while its peer still talks to it
                    _wait_for_every_process(dist, rank_, world)
                dist.destroy_process_group()


def _wait_for_every_process(dist, rank_: int, world: int) -> None:
    """The last meeting before leaving the group, held in the rendezvous store, not in gloo.

    A gloo ``barrier()`` here returns before gloo's worker thread lets go of it, and that thread then
    frees the tensors of earlier collectives; when the process is already shutting Python down, it
    cannot take the GIL to do so and aborts ("terminate called without an active exception"). The
    store's keys carry no tensors, so nothing is left for that thread to free.
    """
    store = dist.distributed_c10d._get_default_store()
    store.set(f"livegen/finished/{rank_}", "1")
    store.wait([f"livegen/finished/{r}" for r in range(world)])
