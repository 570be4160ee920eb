"""The cluster side: kubectl reads and writes (`cluster`), what may be seen and which objects matter
(`discovery`), the watches and waits (`engine`), pure verdicts on Flux objects (`fluxobjects`), live
Events (`events`), diagnostics after a failure (`diagnostics`), and the three ways to tell Flux about
an artifact (`notify`, `receiver`). Imports `context` and below; never `registry` or `delivery`."""
