"""ASGI entry point: ``gunicorn main:app -c gunicorn_config.py``."""

from app.main import create_app

app = create_app()
