"""synthdrift: keeps a model trained on synthetic data anchored to reality."""

__version__ = "0.1.0"
