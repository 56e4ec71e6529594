"""Duplicate groups from pairs: connected components (union-find) and the member to keep first."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

EXACT, PERCEPTUAL, SEMANTIC = 'exact', 'perceptual', 'semantic'
METHODS = (EXACT, PERCEPTUAL, SEMANTIC)


@dataclass
class Pairs:
    """Edges between items (indices into one list), with the similarity and method of each."""

    left: np.ndarray
    right: np.ndarray
    similarity: np.ndarray
    method: str

    @classmethod
    def empty(cls, method: str) -> 'Pairs':
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), method)

    def __len__(self) -> int:
        return len(self.left)


@dataclass
class Member:
    index: int  # position in the item list the pairs refer to
    similarity: Optional[float] = None  # of the edge that joined it (None for the one to keep)
    method: Optional[str] = None
    joined_to: Optional[int] = None  # the item at the other end of that edge


@dataclass
class Group:
    members: List[Member] = field(default_factory=list)
    methods: List[str] = field(default_factory=list)


def group_pairs(n: int, pairs: Sequence[Pairs], keep_order: np.ndarray) -> List[Group]:
    """Connected components of the graph of ``pairs`` over ``n`` items (scipy's union-find).

    ``keep_order`` ranks items (lower = keep first); each group lists its best-ranked member
    first, then the rest in the same order, each with its strongest edge inside the group.
    Groups come in the order of their first member.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = [p for p in pairs if len(p)]
    if not pairs or n == 0:
        return []
    left = np.concatenate([p.left for p in pairs])
    right = np.concatenate([p.right for p in pairs])
    graph = coo_matrix((np.ones(len(left), np.int8), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    best: Dict[int, tuple] = {}  # item -> (similarity, method, other)
    for p in pairs:
        for a, b, s in zip(p.left.tolist(), p.right.tolist(), p.similarity.tolist()):
            for x, y in ((a, b), (b, a)):
                if x not in best or s > best[x][0]:
                    best[x] = (s, p.method, y)
    linked = np.unique(np.concatenate([left, right]))
    by_label: Dict[int, List[int]] = {}
    for item in linked.tolist():
        by_label.setdefault(int(labels[item]), []).append(item)
    groups = []
    for items in by_label.values():
        items.sort(key=lambda i: keep_order[i])
        members = [Member(items[0])]
        for item in items[1:]:
            s, method, other = best[item]
            members.append(Member(item, float(s), method, other))
        methods = sorted({best[i][1] for i in items}, key=METHODS.index)
        groups.append(Group(members, methods))
    groups.sort(key=lambda g: keep_order[g.members[0].index])
    return groups


def keep_order(widths: Sequence[int], heights: Sequence[int], added: Sequence[float],
               first_paths: Sequence[str]) -> np.ndarray:
    """Rank of each item as the copy to keep: largest resolution, then oldest, then path."""
    pixels = np.asarray(widths, np.int64) * np.asarray(heights, np.int64)
    order = np.lexsort((np.asarray(first_paths, dtype=object).astype(str),
                        np.asarray(added, np.float64), -pixels))
    ranks = np.empty(len(order), np.int64)
    ranks[order] = np.arange(len(order))
    return ranks
