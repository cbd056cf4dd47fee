"""A small thread-safe least-recently-used cache, bounded by a total size."""

import collections
import threading

__all__ = ["LRUCache", "ByteCache"]


class LRUCache:
    """A mapping that forgets its least recently used entries beyond ``max_size``.

    Parameters
    ----------
    max_size : int
        The most the entries may add up to, as measured by ``size``.
    size : callable, optional
        ``size(value)``: what an entry counts (default 1: ``max_size`` is a
        number of entries; ``lambda v: v.nbytes`` bounds the memory). An entry
        larger than ``max_size`` by itself is not stored.
    """

    def __init__(self, max_size, size=None):
        self.max_size = max_size
        self._size = size or (lambda value: 1)
        self._items = collections.OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key, value):
        cost = self._size(value)
        if cost > self.max_size:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= old[1]
            self._items[key] = (value, cost)
            self._total += cost
            self._trim()

    def resize(self, max_size):
        """Change ``max_size``; the least recently used entries beyond it are dropped."""
        with self._lock:
            self.max_size = max_size
            self._trim()

    def _trim(self):
        while self._total > self.max_size and self._items:
            _, (_, freed) = self._items.popitem(last=False)
            self._total -= freed

    def clear(self):
        with self._lock:
            self._items.clear()
            self._total = 0

    def __len__(self):
        return len(self._items)

    def __contains__(self, key):
        return key in self._items

    @property
    def total(self):
        """What the entries add up to now."""
        return self._total


class ByteCache(LRUCache):
    """An :class:`LRUCache` bounded in bytes: ``max_bytes`` and ``nbytes`` by name."""

    @property
    def max_bytes(self):
        return self.max_size

    @max_bytes.setter
    def max_bytes(self, value):
        self.resize(int(value))

    @property
    def nbytes(self):
        return self.total
