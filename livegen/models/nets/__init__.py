"""The models as torch trains and evaluates them; each one's ``live()`` hands its weights to the
numpy runtime the live path runs (``livegen/models/<name>.py``, where their configs live too)."""


def state_arrays(module) -> dict:
    """A module's state_dict as numpy arrays: what a checkpoint holds, for a numpy runtime."""
    return {name: tensor.detach().cpu().numpy() for name, tensor in module.state_dict().items()}
