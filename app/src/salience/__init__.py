"""rayforge salience scoring service.

The FastAPI app lives in :mod:`salience.api` (importable without Ray); the Ray Serve
wrapper in :mod:`salience.deployment` (needs ``ray[serve]``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
