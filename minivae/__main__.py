"""`python -m minivae ...` is the same as the `minivae` command."""
from minivae.cli import main

raise SystemExit(main())
