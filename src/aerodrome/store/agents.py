"""Queries for what the control plane keeps of its host agents: how far it recorded each one's events."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from aerodrome.store.schema import agent_cursors


def agent_cursor(conn: Connection, agent: str) -> int:
    found = conn.execute(select(agent_cursors.c.cursor).where(agent_cursors.c.agent == agent)).scalar()
    return int(found or 0)


def set_agent_cursor(conn: Connection, agent: str, cursor: int) -> None:
    moved = conn.execute(update(agent_cursors).where(agent_cursors.c.agent == agent).values(cursor=cursor))
    if moved.rowcount == 0:
        conn.execute(insert(agent_cursors).values(agent=agent, cursor=cursor))
