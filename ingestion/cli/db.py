"""``ndvi-db start|stop|status|url``: manage the embedded PostGIS cluster."""

from __future__ import annotations

import argparse
import logging
import sys

from ingestion.db.connection import describe, resolve_dsn, uses_embedded
from ingestion.db.embedded import EmbeddedCluster, MissingPackagesError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ndvi-db", description=__doc__)
    parser.add_argument("command", choices=["start", "stop", "status", "url"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not uses_embedded():
        # DATABASE_URL / PG* set: the project does not manage that server.
        if args.command == "url":
            print(resolve_dsn())
        else:
            print(f"Using the external database {describe(resolve_dsn())} (DATABASE_URL/PG* set); "
                  f"'{args.command}' does nothing.")
        return 0
    cluster = EmbeddedCluster.from_env()
    try:
        if args.command == "start":
            cluster.start()
        elif args.command == "stop":
            if not cluster.stop():
                print("Embedded PostgreSQL is not running")
        if args.command == "url":
            print(resolve_dsn())
        else:
            print(cluster.status())
    except MissingPackagesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
