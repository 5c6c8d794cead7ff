"""Storage backends behind one async interface (see base.Store)."""
from .base import Store, check_bucket, check_key  # noqa: F401


def open_store(settings) -> Store:
    """POSIX when root_dir is set, else S3 (aws_s3_gateway or AWS's default)."""
    if settings.root_dir:
        from .posix import PosixStore
        return PosixStore(settings.root_dir)
    from .s3 import S3Store
    return S3Store.from_settings(settings)
