"""`python -m hudhud` is the `hudhud` command."""

from hudhud.worker.ops.cli import main

main()
