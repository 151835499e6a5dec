"""Checkpoints: safetensors weights with a JSON header carrying config, vocabulary and conditioning.

Loading needs nothing else, and anything that is not ours (a random file, a truncated file, a
header of the wrong shape, weights that are NaN, a model with another vocabulary) is refused with
one clear line. The file is read with numpy: ``load_live`` / ``load_model`` give the numpy runtime
the live path plays (no torch), ``load`` the torch module training and evaluation use.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

from livegen.checks import check_finite, parse_json
from livegen.errors import UserError
from livegen.models.arrays import WeightsMismatch
from livegen.models.charrnn import CharRNNConfig, LiveCharRNN
from livegen.models.cvae import CVAEConfig, LiveCVAE
from livegen.models.dcrnn import DCRNNConfig, LiveDCRNN
from livegen.models.words import TOKENISER
from livegen.music import conditioning, events

FORMAT = "livegen-checkpoint-1"
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CHARRNN = PACKAGE_DIR / "charrnn-pop909.safetensors"  # counts time in beats: plays on the take's beat
EXPRESSIVE_CHARRNN = PACKAGE_DIR / "expressive-pop909.safetensors"  # a Char-RNN in clock time: its own timing
DEFAULT_DCRNN = PACKAGE_DIR / "dcrnn-pop909.safetensors"
DEFAULT_COMMENTARY = PACKAGE_DIR / "commentary-musiccaps.safetensors"
TEXT_KINDS = {"cvae"}  # models of words: they carry their own vocabulary (in the config), no MIDI events
MAX_HEADER = 16 * 1024 * 1024  # characters of the livegen header; the shipped ones are under 32 KiB
HEADER_TYPES = {"format": str, "kind": str, "config": dict, "vocabulary": (list, dict),
                "conditioning": (dict, type(None)), "extra": dict}
KINDS = {"charrnn": (CharRNNConfig, LiveCharRNN), "dcrnn": (DCRNNConfig, LiveDCRNN), "cvae": (CVAEConfig, LiveCVAE)}


def _torch_modules() -> dict:
    """The torch module of each kind, imported with torch when training or evaluation loads one:
    the live path and reading a header need neither."""
    from livegen.models.nets.charrnn import CharRNN  # torch: only for training and evaluation
    from livegen.models.nets.cvae import CVAE  # torch, as above
    from livegen.models.nets.dcrnn import DCRNN  # torch, as above

    return {"charrnn": CharRNN, "dcrnn": DCRNN, "cvae": CVAE}


def save(path: str | os.PathLike, model, extra: dict | None = None) -> None:
    """Write weights and a metadata header; ``extra`` holds training state (step, metrics)."""
    from safetensors.torch import save_file  # torch: only a trainer saves, and it has torch loaded

    meta = {
        "format": FORMAT,
        "kind": model.kind,
        "config": dataclasses.asdict(model.config),
        "vocabulary": model.vocabulary() if model.kind in TEXT_KINDS else events.vocabulary(),
        "conditioning": None if model.kind in TEXT_KINDS else conditioning.spec(),
        "extra": extra or {},
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = Path(str(path) + ".tmp")
    save_file(tensors, str(tmp), metadata={"livegen": json.dumps(meta)})
    os.replace(tmp, path)  # never leave a half-written checkpoint under the real name


def read_metadata(path: str | os.PathLike) -> dict:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"checkpoint {path} is a folder: give the .safetensors file in it")
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="np") as f:
            raw = (f.metadata() or {}).get("livegen")
    except Exception:
        raise UserError(f"{path} is not a readable safetensors file (corrupt or truncated?)") from None
    if raw is None:
        raise UserError(f"{path} is a safetensors file but not a livegen checkpoint")
    not_ours = f"{path} is not a livegen checkpoint: its livegen header"
    meta = parse_json(raw, not_ours, MAX_HEADER)
    if not isinstance(meta, dict):
        raise UserError(f"{not_ours} is a JSON {type(meta).__name__}, not an object")
    for key, kind in HEADER_TYPES.items():
        if key not in meta:
            raise UserError(f"{not_ours} has no {key}")
        if not isinstance(meta[key], kind):
            raise UserError(f"{not_ours} has a {key} of the wrong type ({type(meta[key]).__name__})")
    check_finite(meta["config"], not_ours, "config")  # extra may hold infinity: a best loss not yet set
    if meta["format"] != FORMAT:
        raise UserError(f"{path}: unknown checkpoint format {meta['format']!r:.80} (expected {FORMAT})")
    if meta["kind"] in TEXT_KINDS:
        vocabulary = meta["vocabulary"]
        if not isinstance(vocabulary, dict) or vocabulary.get("tokeniser") != TOKENISER:
            raise UserError(f"{path}: the model's tokeniser differs from this livegen's ({TOKENISER}); retrain it")
        return meta
    if meta["vocabulary"] != events.vocabulary():
        raise UserError(f"{path}: the model's event vocabulary differs from this livegen's; retrain it")
    if meta["conditioning"] != conditioning.spec():
        raise UserError(f"{path}: the model's conditioning layout differs from this livegen's; retrain it")
    return meta


def _read(path: str | os.PathLike):
    """(metadata, config, weights as numpy arrays) of a checkpoint, every check done."""
    meta = read_metadata(path)
    if meta["kind"] not in KINDS:
        raise UserError(f"{path}: unknown model kind {meta['kind']!r:.80}")
    try:
        weights = load_file(str(path))
    except Exception:
        raise UserError(f"{path} is not a readable safetensors file (corrupt or truncated?)") from None
    for name, array in weights.items():
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise UserError(f"{path}: weight {name!r:.80} holds NaN or infinite values (a diverged or damaged "
                            "model): use another checkpoint")
    try:
        config = KINDS[meta["kind"]][0](**meta["config"])
    except Exception as exc:
        raise _mismatch(path, exc) from None
    return meta, config, weights


def _mismatch(path, exc: Exception) -> UserError:
    why = str(exc) if isinstance(exc, WeightsMismatch) else type(exc).__name__
    return UserError(f"{path}: weights do not match the stored config ({why:.200})")


def load_live(path: str | os.PathLike):
    """(numpy runtime, metadata) from a checkpoint written by ``save``: what the live path plays."""
    meta, config, weights = _read(path)
    try:
        model = KINDS[meta["kind"]][1](config, weights)
    except Exception as exc:
        raise _mismatch(path, exc) from None
    return model, meta


def load(path: str | os.PathLike):
    """(torch module in eval mode, metadata) from a checkpoint written by ``save``: for training
    and evaluation."""
    import torch  # the training runtime: only training and evaluation load a torch module

    meta, config, weights = _read(path)
    try:
        model = _torch_modules()[meta["kind"]](config)
        model.load_state_dict({name: torch.from_numpy(array) for name, array in weights.items()})
    except Exception as exc:
        raise _mismatch(path, exc) from None
    model.eval()
    return model, meta


SHIPPED = {"charrnn": ("Char-RNN", DEFAULT_CHARRNN), "expressive": ("expressive Char-RNN", EXPRESSIVE_CHARRNN),
           "dcrnn": ("DCRNN", DEFAULT_DCRNN)}  # the models a take names without a path


def model_path(name: str | os.PathLike) -> Path:
    """A model's file by name: ``charrnn``, ``expressive`` and ``dcrnn`` are the shipped ones, anything else a
    checkpoint path."""
    if name in SHIPPED:
        what, path = SHIPPED[name]
        if not path.is_file():
            raise UserError(f"the shipped {what} {path} is missing: reinstall livegen")
        return path
    return Path(name)


def load_model(name: str | os.PathLike):
    """The numpy runtime of a model by name (see ``model_path``), for live use; it keeps that name."""
    path = model_path(name)
    model, _ = load_live(path)
    model.name = str(name) if name in SHIPPED else str(path.resolve())  # a replay may run elsewhere
    return model
