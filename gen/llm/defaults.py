"""Defaults the LLM commands and the main job share (one place, so they cannot drift apart)."""

#: BoolQ passages the calibration runs the float model on (``--calibration-texts``)
CALIBRATION_TEXTS = 32
