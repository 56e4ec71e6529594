"""The base of loupe's executors: settings, request checks, the pass-through handler, ``close``.

Jina glue like the executors themselves (the plain code in loupe/ knows nothing of Jina).
"""
import inspect
from typing import Any, Dict, List, Optional

from docarray import DocList
from jina import Executor, requests

from loupe.config import build
from loupe.documents import mark_error
from loupe.parameters import check_count, check_parameters, document_problem
from loupe.schema import ImageDoc

# What Jina itself passes to an executor's __init__; everything else is a loupe setting.
_JINA_ARGS = ('metas', 'requests', 'runtime_args', 'workspace', 'dynamic_batching')


class LoupeExecutor(Executor):
    """``settings_class`` (a ``loupe.config`` dataclass) holds the defaults; the YAML's ``with``
    / ``uses_with`` override them by name, checked (an unknown name or a bad value stops the
    executor at start-up, not at the first request)."""

    settings_class: Optional[type] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.settings_class is None:
            return
        init = cls.__dict__.get('__init__')
        if init is None:  # a signature of its own, not the base's

            def init(self, **settings):
                super(cls, self).__init__(**settings)

            init.__name__, init.__qualname__ = '__init__', f'{cls.__qualname__}.__init__'
            cls.__init__ = init
        # help(), and Jina's check of the YAML's names, see the settings and their defaults.
        P = inspect.Parameter
        init.__signature__ = inspect.Signature(
            [P('self', P.POSITIONAL_OR_KEYWORD)]
            + [P(f.name, P.KEYWORD_ONLY, default=f.default)
               for f in cls.settings_class.__dataclass_fields__.values()]
            + [P('kwargs', P.VAR_KEYWORD)])

    def __init__(self, **kwargs):
        jina_args = {k: kwargs.pop(k) for k in _JINA_ARGS if k in kwargs}
        super().__init__(**jina_args)
        self.settings = build(self.settings_class, kwargs) if self.settings_class else None
        self._resources: List[Any] = []

    def own(self, resource):
        """Close ``resource`` when the executor closes (last owned, first closed)."""
        self._resources.append(resource)
        return resource

    def check_request(self, endpoint: str, docs: Optional[DocList[ImageDoc]],
                      parameters: Optional[dict]) -> Dict[str, Any]:
        """The request's checked parameters (``loupe.parameters``); a document over a cap is
        marked failed with the reason, so every executor after this one leaves it alone."""
        checked = check_parameters(endpoint, parameters)
        check_count(endpoint, len(docs or ()))
        for doc in docs or ():
            problem = document_problem(doc.blob, doc.text) or next(
                filter(None, (document_problem(t.blob, t.text) for t in doc.terms)), None)
            if problem:
                mark_error(doc, problem)
        return checked

    # Why every executor has a default handler: with docarray v2, the gateway derives each
    # endpoint's document schema along every path of the flow and refuses to start when an
    # executor on a path has no handler for an endpoint used upstream (the ranker on /index in
    # the serve chain, say). Executors with nothing to do on an endpoint pass its docs on.
    @requests
    def passthrough(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        return docs

    def close(self) -> None:
        """Jina calls this when the flow stops: release what the executor opened (LMDB
        environments, the graph file), so that a restart finds them saved and unlocked."""
        while self._resources:
            self._resources.pop().close()
        super().close()
