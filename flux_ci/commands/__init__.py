"""One module per command or family (`deploy`: push, deploy, promote; `reconcile`: reconcile, wait;
`status`; `diff`; `doctor`): thin, composing `delivery`, `kube` and `registry`. Imported only by
`cli.specs`, when its command runs."""
