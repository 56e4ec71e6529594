"""All pairs of 64-bit hashes within a Hamming distance, without comparing all pairs.

Multi-index hashing (Norouzi et al., "Fast Search in Hamming Space with Multi-Index Hashing",
CVPR 2012): the 64 bits are split into ``m`` bands; two hashes within distance ``t`` differ in
at most ``t // m`` bits in at least one band (pigeonhole), so every pair is found by looking up,
per band, the buckets within that many flipped bits, then checking the full distance. ``m`` is
chosen per call to keep buckets small (about log2(n) bits a band). Hand-written because no
maintained Python library does exact Hamming range search over all pairs (faiss's binary
multi-hash index is approximate unless tuned, and was far slower here; BK-trees in Python are too).
"""
from itertools import combinations
from math import comb
from typing import List, Tuple

import numpy as np

BITS = 64


def hex_to_uint64(hashes: List[str]) -> np.ndarray:
    return np.array([int(h, 16) for h in hashes], dtype=np.uint64)


def _bands(m: int) -> List[Tuple[int, int]]:
    """(shift, width) of ``m`` bands covering the 64 bits."""
    widths = [BITS // m + (1 if i < BITS % m else 0) for i in range(m)]
    shifts = np.cumsum([0] + widths[:-1]).tolist()
    return list(zip(shifts, widths))


_MAX_WIDTH = 22  # bits a band may have: its bucket table holds 2**width + 1 int64


def _cost(n: int, m: int, threshold: int) -> float:
    radius = threshold // m
    total = 0.0
    for _, width in _bands(m):
        masks = sum(comb(width, r) for r in range(radius + 1))
        # per flip mask: a pass over all n hashes, the table, and the candidates it yields
        total += masks * (4 * n + 2 ** width / 64 + 3 * n * n / 2 ** width)
    return total


def choose_bands(n: int, threshold: int) -> int:
    """The number of bands with the least estimated work (lookups + candidates to check)."""
    fewest = -(-BITS // _MAX_WIDTH)
    return min(range(fewest, max(fewest, min(threshold + 1, 16)) + 1),
               key=lambda m: _cost(max(n, 1), m, threshold))


def _flip_masks(width: int, radius: int) -> np.ndarray:
    masks = [0]
    for r in range(1, radius + 1):
        for bits in combinations(range(width), r):
            masks.append(sum(1 << b for b in bits))
    return np.array(masks, dtype=np.uint64)


def pairs_within(hashes: np.ndarray, threshold: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance) for every i < j with popcount(h_i ^ h_j) <= threshold."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    m = choose_bands(n, threshold)
    radius = threshold // m
    found = []
    for shift, width in _bands(m):
        values = ((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)
        order = np.argsort(values, kind='stable')
        # first[v]: where bucket v starts in ``order``; a dense table (2**width <= ~4M entries)
        first = np.zeros((1 << width) + 1, np.int64)
        np.cumsum(np.bincount(values, minlength=1 << width), out=first[1:])
        for mask in _flip_masks(width, radius).astype(np.int64):
            keys = values ^ mask
            lo, hi = first[keys], first[keys + 1]
            hit = np.flatnonzero(hi > lo)
            if not len(hit):
                continue
            counts = hi[hit] - lo[hit]
            left = np.repeat(hit, counts)
            offsets = np.arange(len(left)) - np.repeat(np.cumsum(counts) - counts, counts)
            right = order[np.repeat(lo[hit], counts) + offsets]
            keep = left < right
            left, right = left[keep], right[keep]
            distance = np.bitwise_count(hashes[left] ^ hashes[right])
            close = distance <= threshold
            found.append(np.stack([left[close], right[close], distance[close].astype(np.int64)]))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    every = np.unique(np.concatenate(found, axis=1), axis=1)  # a pair may share several bands
    return every[0], every[1], every[2]
