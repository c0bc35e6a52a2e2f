"""Request middlewares, one concern per module, applied outermost first in `create_app`."""
