"""Bounds on a GraphQL document, checked before it is validated or run: parsing stops after a number of tokens,
and the operations' depth and field count (each fragment counted at every spread, computed once) are capped, so a
small body cannot ask for an exponential amount of work."""

from __future__ import annotations

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)

from aerodrome.api.limits import ApiLimits


class DocumentRefusedError(Exception):
    """The document is not one this server runs; the message says why, for the client."""


def bounded_document(query: str, limits: ApiLimits) -> DocumentNode:
    """The parsed document, or DocumentRefusedError; a syntax error stays a GraphQLError, as graphql-core has it."""
    try:
        document = parse(query, max_tokens=limits.graphql_tokens)
        depth, fields = measure(document)
    except RecursionError:
        raise DocumentRefusedError(f"query is nested too deeply: at most {limits.graphql_depth} levels") from None
    except GraphQLError as exc:  # graphql-core 3.3 stops at the interpreter's recursion limit itself
        if "nested too deeply" in exc.message:
            raise DocumentRefusedError(f"query is nested too deeply: at most {limits.graphql_depth} levels") from None
        if "Parsing aborted" in exc.message:
            raise DocumentRefusedError(f"query is too long: at most {limits.graphql_tokens} tokens") from None
        raise
    if depth > limits.graphql_depth:
        raise DocumentRefusedError(f"query is nested too deeply: {depth} levels, at most {limits.graphql_depth}")
    if fields > limits.graphql_fields:
        raise DocumentRefusedError(f"query selects too many fields: {fields}, at most {limits.graphql_fields}")
    return document


def measure(document: DocumentNode) -> tuple[int, int]:
    """(depth, fields) over the document's operations; unknown or cyclic fragments count nothing (validation
    refuses them later)."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    measured: dict[str, tuple[int, int]] = {}
    entered: set[str] = set()

    def fragment(name: str) -> tuple[int, int]:
        if name in measured:
            return measured[name]
        if name in entered or name not in fragments:
            return 0, 0
        entered.add(name)
        measured[name] = selections(fragments[name].selection_set)
        return measured[name]

    def selections(node: SelectionSetNode | None) -> tuple[int, int]:
        depth = fields = 0
        for selection in node.selections if node is not None else ():
            if isinstance(selection, FieldNode):
                below, count = selections(selection.selection_set)
                below, count = below + 1, count + 1
            elif isinstance(selection, InlineFragmentNode):
                below, count = selections(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                below, count = fragment(selection.name.value)
            else:  # pragma: no cover - the three kinds of selection
                continue
            depth, fields = max(depth, below), fields + count
        return depth, fields

    depth = fields = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            below, count = selections(definition.selection_set)
            depth, fields = max(depth, below), fields + count
    return depth, fields
