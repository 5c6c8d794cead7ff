"""Entry point of one data node process: `h5cloud-dn` (settings from config/env)."""
import logging
import socket

from aiohttp import web

from ..config import keep_freed_memory, load_settings, use_uvloop
from ..storage import open_store
from .app import make_app
from .node import DataNode


def main():
    use_uvloop()
    keep_freed_memory()
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    node = DataNode(open_store(settings), settings, settings.node_id or socket.gethostname())
    logging.getLogger("h5cloud.dn").info("%s on %s:%d", node.node_id,
                                         settings.bind_address, settings.dn_port)
    web.run_app(make_app(node), host=settings.bind_address, port=settings.dn_port,
                print=None, access_log=None, shutdown_timeout=30)


if __name__ == "__main__":
    main()
