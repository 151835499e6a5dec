"""The PyQt6 control panel (`livegen gui`): play, steer, watch and record from one window."""
