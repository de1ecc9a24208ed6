"""One Redis connection pool per process and URL for Django's cache.

Under ASGI Django builds a new cache object for every request context, and each new
``RedisCache`` client builds its own connection pool: every request opened, and handshook, a new
Redis connection (about 4 ms a request on this machine class). Django's ``pool_class`` option
takes this class instead, which hands every client the same pool for the same URL and options.
redis-py pools notice a fork and start afresh in the child.
"""

from __future__ import annotations

import threading

import redis


class SharedConnectionPool(redis.ConnectionPool):
    _shared: dict[tuple[str, str], redis.ConnectionPool] = {}
    _lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs) -> redis.ConnectionPool:
        key = (url, repr(sorted(kwargs.items())))
        with cls._lock:
            pool = cls._shared.get(key)
            if pool is None:
                pool = cls._shared[key] = super().from_url(url, **kwargs)
        return pool
