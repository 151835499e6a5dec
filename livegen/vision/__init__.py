"""Camera hand tracking: frame sources with a newest-frame capture thread, trackers behind one
interface, and the mapping from a hand position to pitch and density. OpenCV loads only when used."""

# The names of livegen.vision.trackers.TRACKERS, for the CLI and presets without importing numpy or OpenCV.
TRACKER_NAMES = ("color", "motion", "skin", "mediapipe")
