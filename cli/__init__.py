"""The entry points, on top of every other package: the `tributary` command (`cli.main`;
`python -m cli`), the demo and the load generator. Nothing imports them but tests and benches."""
