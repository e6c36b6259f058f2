"""Fixed facts of the lab: account, region, time scale and where the lab keeps its files.

Every lesson runs in the same account and region so that ARNs and outputs are deterministic.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# moto's default test credentials; the lab never sees real ones.
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"


def state_dir() -> Path:
    """Root of everything the lab writes (templates, instance data directories, pid files).

    It lives under the temp directory rather than ~/.cache because, when the lab runs as root,
    PostgreSQL runs as an unprivileged user that must be able to traverse the path.
    """
    base = os.environ.get("RDSLAB_HOME") or os.path.join(
        tempfile.gettempdir(), f"rdslab-{os.getuid()}"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


@dataclass
class TimeScale:
    """How fast lab time runs compared with AWS time.

    AWS waits a minute before the 2nd async retry and up to five minutes to deliver an RDS
    event. A lesson cannot wait that long, so delays are multiplied by ``factor``
    (default 1/600: one AWS minute is 0.1 s). ``realistic_events`` switches on scaled,
    randomised event-delivery delays and shuffled order (AWS: "within five minutes, in no
    guaranteed order"); by default events arrive at once and in order.
    """

    factor: float = 1 / 600
    realistic_events: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def seconds(self, aws_seconds: float) -> float:
        """Lab seconds for a delay that takes ``aws_seconds`` on AWS."""
        return aws_seconds * self.factor


TIME = TimeScale()
