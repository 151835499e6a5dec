"""livegen: a real-time instrument. Gestures steer generative models that stream MIDI and record the take."""

__version__ = "0.1.0"  # the installed version comes from pyproject.toml; a test keeps the two equal
