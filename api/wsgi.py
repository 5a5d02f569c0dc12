"""The WSGI entry point: ``gunicorn api.wsgi:app``."""

from api.app import create_app
from services.logging import configure_logging
from settings import Settings

settings = Settings.from_env()
configure_logging(settings, "web")
app = create_app(settings)
