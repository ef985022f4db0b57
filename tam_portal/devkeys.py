"""Development-only secrets created on first start in the data folder (never in the repo)."""

import os
import secrets
from pathlib import Path


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def development_secret_key(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    if not path.exists():
        try:
            _write_private(path, secrets.token_urlsafe(50).encode())
        except FileExistsError:  # another process created it first
            pass
    return path.read_text().strip()
