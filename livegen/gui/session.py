"""The panel's engine side, free of Qt: takes, merged controls and MIDI port listings.

Starting a take (loading a model, spawning the clock process) and listing ports (rtmidi opens a
client per listing) take tens to hundreds of ms, so both run on worker threads; the Qt thread
only submits work and reads results on its timer. Nothing here ever waits on Qt.
"""
from __future__ import annotations

import dataclasses
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace

from livegen.engine.engine import Engine, EngineSettings
from livegen.errors import UserError
from livegen.music.conditioning import Controls


@dataclass
class TakeRequest:
    """Everything a new take needs, read from the panel when Play is pressed."""

    model: str  # "charrnn" or a checkpoint path
    api: str  # auto | alsa | jack
    port: str  # "" = the first output (or a virtual "livegen" port when there is none)
    virtual: str  # a virtual port to create instead of ``port``
    settings: EngineSettings
    record: str | None = None


class ControlHub:
    """Where the panel's controls meet: a gesture (XY pad, camera, script) sets pitch, density and
    z, the panel sets the pitch-class histogram; the merged value steers the playing engine."""

    def __init__(self, controls: Controls | None = None):
        self._lock = threading.Lock()
        self.controls = controls or Controls()
        self._engine: Engine | None = None
        self._t0 = time.monotonic()

    def attach(self, engine: Engine | None) -> None:
        with self._lock:
            self._engine = engine

    def gesture(self, controls: Controls, t: float | None = None) -> None:
        """Sink for control sources (thread-safe): takes pitch, density and z."""
        self._update(t, pitch=controls.pitch, density=controls.density, z=controls.z)

    def set_histogram(self, histogram: tuple[float, ...] | None) -> None:
        self._update(None, histogram=histogram)

    def clock(self) -> float:
        """Performance time of the playing take (sources stamp their values with it)."""
        engine = self._engine
        return engine.now() if engine is not None else time.monotonic() - self._t0

    def _update(self, t: float | None, **changes) -> None:
        with self._lock:
            self.controls = dataclasses.replace(self.controls, **changes)
            controls, engine = self.controls, self._engine
        if engine is not None and engine.running:
            engine.set_controls(controls, t)


class Takes:
    """One Engine per take. Starts and stops run in order on one worker thread; failures land in
    ``errors`` for the panel to show. Loaded models are kept, so a new take starts quickly."""

    def __init__(self, hub: ControlHub, log=None):
        self.hub = hub
        self.log = log or (lambda text: None)
        self.engine: Engine | None = None
        self.errors: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._models: dict[str, object] = {}
        self._jobs = ThreadPoolExecutor(1, thread_name_prefix="livegen-gui-takes")
        self._pending: list[Future] = []

    @property
    def busy(self) -> bool:
        self._pending = [f for f in self._pending if not f.done()]
        return bool(self._pending)

    def play(self, request: TakeRequest) -> None:
        """Stop the current take (if any) and start a new one."""
        self._submit(self._stop_now)
        self._submit(self._start_now, request)

    def stop(self) -> None:
        self._submit(self._stop_now)

    def preload(self, model: str) -> None:
        """Load a model ahead of Play; a bad checkpoint is reported at once."""
        self._submit(self._model, model)

    def panic(self) -> None:
        engine = self.engine
        if engine is not None:
            engine.panic()

    def shutdown(self) -> None:
        self.stop()
        self._jobs.shutdown(wait=True)

    def _submit(self, job, *args) -> None:
        self._pending.append(self._jobs.submit(self._reporting, job, *args))

    def _reporting(self, job, *args) -> None:
        try:
            job(*args)
        except UserError as exc:
            self.errors.put(str(exc))
        except Exception as exc:  # the panel must show it and live on, whatever it was
            self.errors.put(f"{type(exc).__name__}: {exc}")

    def _model(self, name: str):
        if name not in self._models:
            from livegen.cli import load_model

            self._models[name] = load_model(name)
        return self._models[name]

    def _start_now(self, request: TakeRequest) -> None:
        from livegen import presets
        from livegen.cli import choose_output

        model = self._model(request.model)
        wanted = SimpleNamespace(no_port=False, port=request.port or None, virtual=request.virtual or None,
                                 api=request.api)
        output = choose_output(wanted, presets.Preset())
        engine = Engine(model, output, request.settings, self.hub.controls, record=request.record, log=self.log)
        engine.start()
        self.engine = engine
        self.hub.attach(engine)
        engine.set_controls(self.hub.controls)  # whatever moved while the clock process started

    def _stop_now(self) -> None:
        engine, self.engine = self.engine, None
        self.hub.attach(None)
        if engine is not None:
            engine.stop()


class PortWatch:
    """Lists MIDI outputs on a worker thread; ``latest`` is the newest (api, outputs) or an error."""

    def __init__(self):
        self._jobs = ThreadPoolExecutor(1, thread_name_prefix="livegen-gui-ports")
        self._future: Future | None = None
        self.latest: tuple[str | None, list[str]] | None = None
        self.error: str | None = None

    def refresh(self, api: str) -> None:
        """Ask for a new listing unless one is still being made."""
        if self._future is None or self._future.done():
            self._future = self._jobs.submit(self._list, api)

    def _list(self, api: str) -> None:
        from livegen.midi import ports

        try:
            resolved = ports.resolve_api(api)
            self.latest = (resolved, ports.list_ports(resolved)["outputs"] if resolved else [])
            self.error = None
        except UserError as exc:
            self.latest, self.error = None, str(exc)

    def shutdown(self) -> None:
        self._jobs.shutdown(wait=True)
