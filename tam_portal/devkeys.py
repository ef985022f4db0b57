"""Development-only secrets created on first start in the data folder (never in the repo)."""

import os
import secrets
from pathlib import Path


def create_private_file(path: Path, data: bytes) -> bool:
    """Create `path` readable by its owner only (0600) unless it exists; True if created.
    Safe when several processes start at once: the first one wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return True


def development_secret_key(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    create_private_file(path, secrets.token_urlsafe(50).encode())
    return path.read_text().strip()
