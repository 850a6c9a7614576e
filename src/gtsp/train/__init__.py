"""Training: one run from its config to ``results.json`` (:mod:`gtsp.train.run`), and the checkpoint
of a run folder for the tools that read one (:func:`load_checkpoint`)."""
from gtsp.train.run_folder import load_checkpoint

__all__ = ["load_checkpoint"]
