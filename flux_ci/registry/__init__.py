"""The registry side: the one login (`credentials`), push/tag/resolve with retries (`client`,
`retry`), packaging and publishing the artifact (`publish`) and signing it (`sign`). Imports
`context` and below; never `kube` or `delivery`."""
