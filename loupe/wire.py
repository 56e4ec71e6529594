"""The protobuf codec of loupe's documents, without docarray's per-value overhead.

Every hop of a flow converts each document to protobuf and back. docarray's generic codec
spends ~55 us writing and ~45 us reading a search match (an import, a dozen isinstance checks
and an annotation lookup per value, and a copy of every nested message into its parent): for
the 100 chunk hits the indexer hands the ranker, 10 ms of each query. ``FastProtobuf`` writes
exactly the same messages (so any docarray reader understands them, and it reads any docarray
writer's) in place, with a dispatch on the exact type of plain values: ~14 us to write a match,
~30 us to read one (a third of it pydantic's validation, which stays). Anything else (ids,
tensors, other types) still goes through docarray.
"""
import os
from typing import Any

from docarray import DocList
from docarray.base_doc.mixins.io import _type_to_protobuf
from docarray.proto import DocProto, NodeProto

from loupe.constants import ENV_FAST_CODEC

_SCALARS = {str: 'text', bool: 'boolean', int: 'integer', float: 'float', bytes: 'blob'}
_CONTAINERS = {list: 'list', set: 'set', tuple: 'tuple'}


def write(node: NodeProto, value: Any) -> None:
    """Make the empty ``node`` what docarray's ``_type_to_protobuf`` makes of ``value``.

    In place: building each NodeProto apart and copying it into its parent costs twice as much.
    """
    kind = type(value)
    key = _SCALARS.get(kind)
    if key is not None:
        setattr(node, key, value)
    elif value is None:
        pass  # an empty node; its parent's entry (map value or list item) exists already
    elif kind in _CONTAINERS:
        container = getattr(node, _CONTAINERS[kind])
        container.SetInParent()  # an empty list is still a list
        items = container.data
        for item in value:
            write(items.add(), item)
    elif kind is dict and all(type(k) is str for k in value):
        node.dict.SetInParent()
        entries = node.dict.data
        for k, v in value.items():
            write(entries[k], v)
    elif isinstance(value, DocList) and issubclass(value.doc_type, FastProtobuf):
        node.doc_array.SetInParent()
        docs = node.doc_array.docs
        for doc in value:
            doc.write_protobuf(docs.add())
    else:
        node.CopyFrom(_type_to_protobuf(value))


_PLAIN = frozenset({'text', 'blob', 'integer', 'float', 'boolean'})
_FAILED = (False, None)


def read(node: NodeProto):
    """(True, value) for a node docarray reads back as a plain value or an id, else
    (False, None): docarray reads that one."""
    content = node.WhichOneof('content')
    if node.WhichOneof('docarray_type') is not None:
        # An id is its text; the document's validation makes it an ID, as docarray does.
        return (True, node.text) if content == 'text' and node.type == 'id' else _FAILED
    if content in _PLAIN:
        return True, getattr(node, content)
    if content is None:
        return True, None
    if content == 'dict':
        out = {}
        for key, item in node.dict.data.items():
            ok, out[key] = read(item)
            if not ok:
                return _FAILED
        return True, out
    if content == 'list':
        out = []
        for item in node.list.data:
            ok, value = read(item)
            if not ok:
                return _FAILED
            out.append(value)
        return True, out
    return _FAILED


class FastProtobuf:
    """Mixin for a BaseDoc (put it first): the same protobuf messages, made faster."""

    def to_protobuf(self) -> DocProto:
        message = DocProto()
        self.write_protobuf(message)
        return message

    def write_protobuf(self, message: DocProto) -> None:
        """Fill the empty ``message`` (e.g. a list item of the parent's message) in place."""
        data = message.data
        for name, value in self:
            write(data[name], value)  # indexing a map field adds the entry

    @classmethod
    def from_protobuf(cls, pb_msg: DocProto):
        fields = cls._docarray_fields()
        extra = getattr(cls.Config, '_load_extra_fields_from_protobuf', False)
        values = {}
        for name, node in pb_msg.data.items():
            if not extra and name not in fields:
                continue  # as docarray: keys that are no field are not even read
            ok, value = read(node)
            values[name] = value if ok else cls._get_content_from_node_proto(node, name)
        return cls(**values)


def enabled() -> bool:
    """``$LOUPE_FAST_CODEC`` (default 1); 0 leaves loupe's documents to docarray's own codec.

    Read when loupe.schema is imported: set it before a flow starts (its executors inherit it).
    """
    return os.environ.get(ENV_FAST_CODEC, '1').strip() != '0'


# The mixin of loupe's document classes: FastProtobuf, or nothing (plain docarray documents).
CODEC = (FastProtobuf,) if enabled() else ()
