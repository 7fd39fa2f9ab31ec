"""`python -m regwatch` runs the command-line front end."""

from regwatch.frontends.cli import main

raise SystemExit(main())
