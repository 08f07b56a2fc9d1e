"""Operator tools: the CLI, `hudhud check`, the dev stack and the processes it runs."""
