"""Control from other tools: OSC in and out (osc.py)."""
