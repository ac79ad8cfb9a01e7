"""The intermediate representation: op table, graph, printer."""
