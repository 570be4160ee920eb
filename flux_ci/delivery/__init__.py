"""Getting one artifact applied in every cluster of a run: the clusters checked and watched
(`prepare`, `observe`), the requests and the waits (`settle`), the clusters side by side (`fleet`),
wave after wave with a soak between them (`waves`, `soak`) and putting the tags back after a failure
(`rollback`). Uses `kube` and `registry`; never the CLI."""
