"""``flywheel demo``: a support-ticket router on the embedded LM improves itself end to end."""
