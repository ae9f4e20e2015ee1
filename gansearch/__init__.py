"""gansearch: hyperparameter search for the adversarial nets of Goodfellow et al. (2014)."""

__version__ = "0.1.0"
