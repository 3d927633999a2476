"""Module-level app with default settings, for running without Ray::

uvicorn salience.asgi:app --host 0.0.0.0 --port 8000 --workers 2
"""

from salience.api import create_app
from salience.models import AppSettings

app = create_app(AppSettings())
