"""The application layers of the platform under one import namespace:
`aisdk.cli` (the `aisdk` command, the composition root), `aisdk.components`
(the AI components that run on the contracts) and `aisdk.bench` (the
benchmark). The library layers keep their own top-level packages:
`runtime`, `codegen` and the generated contracts (`ai.*`).

Importing `aisdk` imports nothing else, so `aisdk.components` never loads
the CLI and the CLI never loads a component it does not serve."""
