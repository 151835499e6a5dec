"""Learned MIDI bindings applied to a take: a controller's messages steer controls or do actions.

``LearnedBindings.handle`` runs on an input port's reader thread for each well-formed channel
message. A message a binding hears is the binding's alone (it is not heard as the player's
playing): a control binding sets just its control through ``ControlHub.learned``, clamped and
stamped with the message's arrival on the take's clock, so a recorded take replays it note for
note; a theme or an action happens on a press (a note struck, a CC or bend crossing its middle
upwards), handed to ``act`` (the take runner's, or the panel's), which must return at once.
"""
from __future__ import annotations

import threading
from typing import Callable

from livegen.midi.bindings import ACTIONS, PRESS, THEME_PREFIX, Binding
from livegen.take.controls import ControlHub

Act = Callable[[str], None]


class LearnedBindings:
    def __init__(self, bindings: tuple[Binding, ...], hub: ControlHub, act: Act):
        self.bindings, self.hub, self.act = tuple(bindings), hub, act
        self._pressed = [False] * len(self.bindings)
        self._lock = threading.Lock()
        self.applied: list[tuple[float, float, str]] = []  # (arrival, stamped take time, target), the latest few
        self.on_applied: Callable[[Binding, float], None] | None = None  # the panel's "it moved" feedback

    @property
    def ports(self) -> list[str]:
        """The ports the bindings name (their controller listened to even when not a player's port)."""
        return sorted({b.port for b in self.bindings if b.port})

    def handle(self, port: str, at: float, msg: list[int], t: float) -> bool:
        """Apply ``msg`` from ``port``, arrived at monotonic ``at`` (take time ``t``); whether a
        binding took it."""
        taken = False
        for index, binding in enumerate(self.bindings):
            if not binding.hears(port, msg):
                continue
            taken = True
            if binding.target in ACTIONS or binding.target.startswith(THEME_PREFIX):
                with self._lock:
                    pressed = binding.level(msg) >= PRESS
                    rising = pressed and not self._pressed[index]
                    self._pressed[index] = pressed
                if not rising:
                    continue
                if binding.target.startswith(THEME_PREFIX):
                    self.hub.learned({"theme": binding.target[len(THEME_PREFIX):]}, t)
                else:
                    self.act(binding.target)
            else:
                self.hub.learned({binding.target: binding.value(msg)}, t)
            with self._lock:
                self.applied = self.applied[-63:] + [(at, t, binding.target)]
            if self.on_applied is not None:
                self.on_applied(binding, at)
        return taken
