"""The dashboard: story list, story and article pages, and a JSON API over a Deduper.

Needs the ``web`` extra (``pip install dedup[web]``); the core package does
not import this module, so batch users never pay for FastAPI.
"""

from .app import create_app

__all__ = ["create_app"]
