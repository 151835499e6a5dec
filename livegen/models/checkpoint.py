"""Checkpoints: safetensors weights with a JSON header carrying config, vocabulary and conditioning.

Loading needs nothing else, and anything that is not ours (a random file, a truncated file, a
header of the wrong shape, weights that are NaN, a model with another vocabulary) is refused with
one clear line.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from safetensors import safe_open

from livegen.checks import check_finite, parse_json
from livegen.errors import UserError
from livegen.models.words import TOKENISER
from livegen.music import conditioning, events

FORMAT = "livegen-checkpoint-1"
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CHARRNN = PACKAGE_DIR / "charrnn-pop909.safetensors"
DEFAULT_DCRNN = PACKAGE_DIR / "dcrnn-pop909.safetensors"
DEFAULT_COMMENTARY = PACKAGE_DIR / "commentary-musiccaps.safetensors"
TEXT_KINDS = {"cvae"}  # models of words: they carry their own vocabulary (in the config), no MIDI events
MAX_HEADER = 16 * 1024 * 1024  # characters of the livegen header; the shipped ones are under 32 KiB
HEADER_TYPES = {"format": str, "kind": str, "config": dict, "vocabulary": (list, dict),
                "conditioning": (dict, type(None)), "extra": dict}


def _registry():
    """The model classes, imported with torch when the first checkpoint loads: reading a header
    (the command line, a take checking its model) needs neither."""
    from livegen.models.charrnn import CharRNN, CharRNNConfig  # torch, on the first load
    from livegen.models.cvae import CVAE, CVAEConfig  # torch, on the first load
    from livegen.models.dcrnn import DCRNN, DCRNNConfig  # torch, on the first load

    return {"charrnn": (CharRNN, CharRNNConfig), "dcrnn": (DCRNN, DCRNNConfig), "cvae": (CVAE, CVAEConfig)}


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
        with safe_open(str(path), framework="pt") as f:
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


def load(path: str | os.PathLike):
    """(model in eval mode, metadata) from a checkpoint written by ``save``."""
    import torch  # the models' runtime: loaded with the first model, not by read_metadata
    from safetensors.torch import load_file  # torch too

    meta = read_metadata(path)
    registry = _registry()
    if meta["kind"] not in registry:
        raise UserError(f"{path}: unknown model kind {meta['kind']!r:.80}")
    model_cls, config_cls = registry[meta["kind"]]
    try:
        weights = load_file(str(path))
    except Exception:
        raise UserError(f"{path} is not a readable safetensors file (corrupt or truncated?)") from None
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserError(f"{path}: weight {name!r:.80} holds NaN or infinite values (a diverged or damaged "
                            "model): use another checkpoint")
    try:
        config = config_cls(**meta["config"])
        model = model_cls(config)
        model.load_state_dict(weights)
    except Exception as exc:
        raise UserError(f"{path}: weights do not match the stored config ({type(exc).__name__})") from None
    model.eval()
    return model, meta


def load_model(name: str | os.PathLike):
    """A model by name: ``charrnn`` and ``dcrnn`` are the shipped ones, anything else a checkpoint path."""
    shipped = {"charrnn": ("Char-RNN", DEFAULT_CHARRNN), "dcrnn": ("DCRNN", DEFAULT_DCRNN)}
    if name in shipped:
        what, path = shipped[name]
        if not path.is_file():
            raise UserError(f"the shipped {what} {path} is missing: reinstall livegen")
        name = path
    model, _ = load(name)
    return model
