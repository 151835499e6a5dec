"""The take layer: a preset plus overrides become a ``TakeSpec``, and a ``TakeRunner`` turns it into
a running take (model, ports, clock, control sources, tempo following). ``livegen perform``, the
panel, OSC's /play and /stop and ``livegen comment --live`` all start takes here, so a preset plays
the same way wherever it is played from. Nothing here knows Qt or argparse."""
