"""livegen: a real-time instrument. Gestures steer generative models that stream MIDI and record the take."""
