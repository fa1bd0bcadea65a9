"""`python -m servekit.worker --sock-name PATH`: a freshly spawned worker (no zygote)."""

from __future__ import annotations

import argparse
import sys

from servekit.worker.main import serve


def main() -> int:
    parser = argparse.ArgumentParser(prog="servekit-worker")
    parser.add_argument("--sock-type", default="unix", choices=["unix"])
    parser.add_argument("--sock-name", required=True)
    parser.add_argument("--metrics-config", default=None)
    args = parser.parse_args()
    # The worker's own package dir must not shadow user modules of the same name.
    sys.path[:] = [p for p in sys.path if not p.endswith("servekit/worker")]
    return serve(args.sock_name)


if __name__ == "__main__":
    sys.exit(main())
