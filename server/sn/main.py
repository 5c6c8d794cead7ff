"""Entry point of the service node process: `h5cloud-sn` (settings from config/env)."""
import logging

from aiohttp import web

from ..config import keep_freed_memory, load_settings, use_uvloop
from ..offload import emf
from ..storage import open_store
from .app import make_app
from .service import Service


def main():
    use_uvloop()
    keep_freed_memory()
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if emf.enabled(settings):
        emf.install()           # the records alone on their own stream (CloudWatch reads them)
    svc = Service(settings, open_store(settings))
    logging.getLogger("h5cloud.sn").info("%s on %s:%d with %d data nodes", svc.node_id,
                                         settings.bind_address, settings.sn_port,
                                         len(svc.nodes.urls))
    web.run_app(make_app(svc), host=settings.bind_address, port=settings.sn_port,
                print=None, access_log=None, shutdown_timeout=10)


if __name__ == "__main__":
    main()
