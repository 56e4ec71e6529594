"""Models of the partition methods, loaded once per (role, checkpoint, device), and batching."""
import threading
from typing import Callable, Dict, List, Sequence


class ModelCache:
    """Models loaded on first use, one per (role, checkpoint, device), shared across requests."""

    def __init__(self):
        self._models: Dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, load: Callable[[], tuple]) -> tuple:
        with self._lock:  # sync endpoints run in a thread pool: load each model once
            if key not in self._models:
                self._models[key] = load()
            return self._models[key]


def batches(keys: Sequence, batch_size: int) -> List[List[int]]:
    """Indices grouped by key (inputs of one shape stack without padding), at most batch_size."""
    groups: Dict = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return [g[j:j + batch_size] for g in groups.values() for j in range(0, len(g), batch_size)]
