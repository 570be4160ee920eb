"""The one door to processes (`runner`, the only module that imports `sh`, over `supervise` and
`output`) and one module per wrapped CLI with pure argv builders and parsers (`flux`, `oras`,
`kubectl`, `cosign`), plus the tools' version checks (`toolcheck`). Imports the ground floor only."""
