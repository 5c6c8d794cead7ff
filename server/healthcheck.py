"""The containers' health check: `python -m server.healthcheck` exits 0 when the node
in this container (SN or DN: whichever port listens) answers GET /health with 200."""
import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    for port in (os.environ.get("SN_PORT", "5101"), os.environ.get("DN_PORT", "6101")):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as rsp:
                return 0 if rsp.status == 200 else 1
        except urllib.error.HTTPError:
            return 1                    # it listens but is not healthy (yet)
        except OSError:
            continue                    # nothing on this port: the other role
    return 1


if __name__ == "__main__":
    sys.exit(main())
