from __future__ import annotations

from aerodrome.cli import main

main()
