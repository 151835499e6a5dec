"""The one place a MIDI byte leaves livegen checks every byte."""
import pytest


def test_every_byte_livegen_sends_goes_through_the_ports_checks():
    """Notes, controls and the MIDI clock out's system messages pass; anything else is refused."""
    from livegen.midi.ports import NullOutput

    port = NullOutput()
    for ok in ([0x90, 60, 100], [0xB0, 123, 0], [0xF8], [0xFA], [0xFB], [0xFC], [0xF2, 0x10, 0x01]):
        port.send(ok)
    for bad in ([], [0xF2, 1], [0xF8, 0], [0xF0, 1, 2], [0x90, 128, 1], [0x40]):
        with pytest.raises(ValueError):
            port.send(bad)
