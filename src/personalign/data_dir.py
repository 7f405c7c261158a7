"""Where the shared evaluation data (P-SOUPS judge prompts, benchmarks) lives.

The data is not shipped with the package: it sits beside the repository checkout in `shared/data`, or
wherever $PERSONALIGN_DATA points (needed when personalign is installed from a wheel rather than
from a checkout, since then the checkout-relative guess points inside site-packages).
"""

import os
from pathlib import Path


def default_data_dir() -> Path:
    """$PERSONALIGN_DATA if set, else `shared/data` beside the repository root (`<repo>/../shared/data`)."""
    configured = os.environ.get("PERSONALIGN_DATA")
    if configured:
        return Path(configured).expanduser().resolve()
    repo_root = Path(__file__).resolve().parents[2]  # <repo>/src/personalign/data_dir.py
    return (repo_root / ".." / "shared" / "data").resolve()
