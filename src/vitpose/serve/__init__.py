"""`vitpose serve`: the HTTP service (optional extra `vitpose[serve]`: FastAPI, uvicorn, python-multipart,
prometheus-client).

Imported only by `vitpose serve` and by callers of `create_app`; `import vitpose` never imports FastAPI.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from vitpose.errors import MissingDependencyError

__all__ = ["DEFAULT_MAX_PIXELS", "create_app", "require_serve"]

DEFAULT_MAX_PIXELS = 50_000_000  # the service's own limit on an image's pixels (413 over)

# Import name -> distribution, of what the service needs (python-multipart is imported as python_multipart or, in
# older releases, multipart).
NEEDED = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "python_multipart|multipart": "python-multipart",
    "prometheus_client": "prometheus-client",
}


def require_serve() -> None:
    """A `MissingDependencyError` naming what to install when the serve extra is not installed."""
    missing = [dist for names, dist in NEEDED.items() if not any(_found(n) for n in names.split("|"))]
    if missing:
        raise MissingDependencyError(
            f'vitpose serve needs {", ".join(missing)}, not installed: pip install "vitpose[serve]"'
        )


def _found(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def create_app(*args: Any, **kwargs: Any) -> Any:
    """`vitpose.serve.app.create_app` (see there), with a clear error when the serve extra is missing."""
    require_serve()
    from vitpose.serve.app import create_app as create

    return create(*args, **kwargs)
