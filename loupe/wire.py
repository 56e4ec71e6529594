"""The protobuf codec of loupe's documents, without docarray's per-value overhead.

Every hop of a flow converts each document to protobuf and back. docarray's generic codec
spends ~50 us per search match each way (an import, a dozen isinstance checks and an annotation
lookup per value), which for the 100 chunk hits the indexer hands the ranker is most of the
query's transport cost. ``FastProtobuf`` writes exactly the same messages (so any docarray
reader understands them, and this codec reads any docarray writer's) with a dispatch on the
exact type of plain values; everything else (ids, tensors, nested documents and lists of them)
still goes through docarray.
"""
from typing import Any

from docarray.base_doc.mixins.io import _type_to_protobuf
from docarray.proto import DictOfAnyProto, DocProto, ListOfAnyProto, NodeProto

_SCALARS = {str: 'text', bool: 'boolean', int: 'integer', float: 'float', bytes: 'blob'}
_CONTAINERS = {list: 'list', set: 'set', tuple: 'tuple'}


def to_node(value: Any) -> NodeProto:
    """The NodeProto docarray's ``_type_to_protobuf`` makes of ``value``."""
    kind = type(value)
    key = _SCALARS.get(kind)
    if key is not None:
        return NodeProto(**{key: value})
    if value is None:
        return NodeProto()
    key = _CONTAINERS.get(kind)
    if key is not None:
        return NodeProto(**{key: ListOfAnyProto(data=[to_node(item) for item in value])})
    if kind is dict and all(type(k) is str for k in value):
        return NodeProto(dict=DictOfAnyProto(data={k: to_node(v) for k, v in value.items()}))
    return _type_to_protobuf(value)


_PLAIN = {'text', 'blob', 'integer', 'float', 'boolean'}


def _plain(node: NodeProto):
    """(True, value) for a node docarray would read back as a plain value, else (False, None)."""
    if node.WhichOneof('docarray_type') is not None:
        return False, None
    content = node.WhichOneof('content')
    if content in _PLAIN:
        return True, getattr(node, content)
    if content is None:
        return True, None
    if content == 'dict':
        out = {}
        for key, item in node.dict.data.items():
            ok, value = _plain(item)
            if not ok:
                return False, None
            out[key] = value
        return True, out
    if content == 'list':
        out = []
        for item in node.list.data:
            ok, value = _plain(item)
            if not ok:
                return False, None
            out.append(value)
        return True, out
    return False, None


class FastProtobuf:
    """Mixin for a BaseDoc (put it first): the same protobuf messages, made faster."""

    def to_protobuf(self) -> DocProto:
        return DocProto(data={name: to_node(value) for name, value in self})

    @classmethod
    def from_protobuf(cls, pb_msg: DocProto):
        fields = cls._docarray_fields()
        extra = getattr(cls.Config, '_load_extra_fields_from_protobuf', False)
        values = {}
        for name, node in pb_msg.data.items():
            if not extra and name not in fields:
                continue  # as docarray: keys that are no field are not even read
            ok, value = _plain(node)
            values[name] = value if ok else cls._get_content_from_node_proto(node, name)
        return cls(**values)
