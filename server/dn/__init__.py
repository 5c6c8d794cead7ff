"""The data node (DN): caches and write-back to storage."""
