"""`python -m synthloom` is the `synthloom` command."""

from .cli import main

main()
