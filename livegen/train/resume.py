"""Optimizer state beside a checkpoint (``<checkpoint>.opt.safetensors``), so training resumes where
it stopped. The checkpoint itself stays the plain livegen format the live engine loads."""
from __future__ import annotations

import os
from pathlib import Path

from safetensors import safe_open


def save_optimizer(path: Path, tensors: dict, step: int) -> None:
    """Write ``tensors`` stamped with ``step``, atomically. Write it before the checkpoint: a run killed
    between the two then resumes with a fresh optimizer (see ``load_optimizer``), never a stale one."""
    from safetensors.torch import save_file  # torch: the trainers import this module before training starts

    tmp = Path(str(path) + ".tmp")
    save_file({k: t.detach().contiguous().cpu() for k, t in tensors.items()}, str(tmp), metadata={"step": str(step)})
    os.replace(tmp, path)


def load_optimizer(path: Path, step: int, log) -> dict | None:
    """The saved tensors when they belong to the checkpoint at ``step``; None (said why) otherwise."""
    from safetensors.torch import load_file  # torch: the trainers import this module before training starts

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            saved_step = (f.metadata() or {}).get("step")
        tensors = load_file(str(path))
    except Exception:
        log(f"{path} is unreadable: the optimizer starts afresh")
        return None
    if saved_step is not None and int(saved_step) != step:
        log(f"{path} is from step {saved_step} but the checkpoint from step {step} (a run killed between the "
            "two writes): the optimizer starts afresh")
        return None
    return tensors


def optimizer_tensors(opt, prefix: str = "") -> dict:
    """An optimizer's per-parameter state as flat tensors: ``<prefix><param index>.<key>``."""
    import torch  # the trainers import this module before training starts

    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"{prefix}{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(float(v))
    return out


def restore_optimizer(opt, tensors: dict, prefix: str = "") -> None:
    """Put back what ``optimizer_tensors`` took (tensors move to the parameters' device)."""
    sd = opt.state_dict()
    for i in sd["param_groups"][0]["params"]:
        keys = [k for k in tensors if k.startswith(f"{prefix}{i}.")]
        if keys:
            sd["state"][i] = {k[len(f"{prefix}{i}."):]: tensors[k] for k in keys}
    opt.load_state_dict(sd)
