#!/usr/bin/env python3
"""Print the part of Fly's GraphQL schema that a set of client documents and aerodrome's current schema use.

    scripts/graphql-subset.py FLY_SCHEMA CURRENT_SCHEMA DOCUMENT... > src/aerodrome/api/graphql/schema.graphql

Every kept type and field is Fly's own definition (names, arguments, nullability), so a document that validates
here validates against api.fly.io; fields no document selects are left out.
"""

from __future__ import annotations

import sys
from pathlib import Path

from graphql import (
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    TypeInfo,
    TypeInfoVisitor,
    build_schema,
    get_named_type,
    parse,
    print_schema,
    visit,
)
from graphql.language import FieldNode, FragmentDefinitionNode, InlineFragmentNode, Visitor


def used_fields(schema: GraphQLSchema, documents: list[str]) -> tuple[set[tuple[str, str]], set[str]]:
    """(type, field) pairs selected by the documents, and the type names their fragments name."""
    fields: set[tuple[str, str]] = set()
    conditions: set[str] = set()
    info = TypeInfo(schema)

    class Collect(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            parent = info.get_parent_type()
            if parent is not None and node.name.value != "__typename":
                fields.add((parent.name, node.name.value))

        def enter_inline_fragment(self, node: InlineFragmentNode, *_: object) -> None:
            if node.type_condition:
                conditions.add(node.type_condition.name.value)

        def enter_fragment_definition(self, node: FragmentDefinitionNode, *_: object) -> None:
            conditions.add(node.type_condition.name.value)

    for text in documents:
        visit(parse(text), TypeInfoVisitor(info, Collect()))
    return fields, conditions


def current_fields(sdl: str) -> set[tuple[str, str]]:
    current = build_schema(sdl)
    roots = {"Query": "Queries", "Mutation": "Mutations"}  # Fly's root type names
    return {
        (roots.get(t.name, t.name), f)
        for t in current.type_map.values()
        if isinstance(t, (GraphQLObjectType, GraphQLInterfaceType)) and not t.name.startswith("__")
        for f in t.fields
    }


def subset(fly: GraphQLSchema, keep: set[tuple[str, str]], conditions: set[str]) -> GraphQLSchema:
    kept_types = {t for t, _ in keep} | conditions
    for type_name, field_name in list(keep):
        owner = fly.type_map[type_name]
        assert isinstance(owner, (GraphQLObjectType, GraphQLInterfaceType))
        target = get_named_type(owner.fields[field_name].type)
        if isinstance(target, (GraphQLObjectType, GraphQLInterfaceType)) and target.name not in kept_types:
            kept_types.add(target.name)
    for name in list(kept_types):  # an interface selected only through fragments keeps one field, as SDL needs
        owner = fly.type_map[name]
        if isinstance(owner, GraphQLInterfaceType) and not any(t == name for t, _ in keep):
            keep.add((name, "id" if "id" in owner.fields else next(iter(owner.fields))))
    # an interface's fields are every implementation's fields; an abstract type keeps the members named
    changed = True
    while changed:
        changed = False
        for name in list(kept_types):
            owner = fly.type_map[name]
            if isinstance(owner, (GraphQLObjectType, GraphQLInterfaceType)):
                for interface in owner.interfaces:
                    if interface.name in kept_types:
                        for field in interface.fields:
                            if (interface.name, field) in keep and (name, field) not in keep:
                                keep.add((name, field))
                                changed = True
    for name, named in fly.type_map.items():
        if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)) and name in kept_types:
            for field in [f for f in named.fields if (name, f) not in keep]:
                del named.fields[field]
            named.interfaces = tuple(i for i in named.interfaces if i.name in kept_types)  # type: ignore[misc]
        if isinstance(named, GraphQLUnionType) and name in kept_types:
            members = [t for t in named.types if t.name in kept_types]
            named.types = tuple(members or named.types[:1])  # type: ignore[misc]
    extra: list[GraphQLNamedType] = [fly.type_map[n] for n in sorted(kept_types) if n not in ("Queries", "Mutations")]
    for named in extra:  # implementations of a kept interface that no document names still need a field list
        if isinstance(named, GraphQLObjectType) and not named.fields:
            raise SystemExit(f"{named.name} has no kept field")
    return GraphQLSchema(
        query=fly.query_type,
        mutation=fly.mutation_type,
        types=[t for t in extra if not isinstance(t, GraphQLInputObjectType)],
    )


HEADER = """\
# The part of Fly's GraphQL API (api.fly.io/graphql) that aerodrome serves, generated by
# scripts/graphql-subset.py from flyctl's gql/schema.graphql and the documents in tests/api/fixtures/graphql/:
# Fly's own definitions, so flyctl's and fly-go's documents validate unchanged; other fields are a validation error.

"""


def main(argv: list[str]) -> None:
    fly = build_schema(Path(argv[1]).read_text())
    documents = [Path(p).read_text() for p in argv[3:]]
    selected, conditions = used_fields(fly, documents)
    keep = selected | current_fields(Path(argv[2]).read_text())
    print(HEADER + print_schema(subset(fly, keep, conditions)))


if __name__ == "__main__":
    main(sys.argv)
