"""rayforge salience scoring service.

The FastAPI app is built in :mod:`salience.api` (importable without Ray); the Ray Serve
wrapper is :mod:`salience.deployment` (needs ``ray[serve]``). One module per behaviour:

* :mod:`salience.api` - the routes and ``create_app``;
* :mod:`salience.models` - request/response bodies, settings, the URL paths;
* :mod:`salience.scoring` - the scoring arithmetic;
* :mod:`salience.errors` - the error body shape and the exception handlers;
* :mod:`salience.body_limit` - the request body size limit (413);
* :mod:`salience.routing` - the Content-Type check (415) and fast JSON validation;
* :mod:`salience.probe` - the self-test of ``/healthz`` and the replica health probe;
* :mod:`salience.asgi` - a module-level app for uvicorn;
* :mod:`salience.deployment` - the Ray Serve deployment and its app builder.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
