"""Docker Content Trust: signing what `out` pushed into a Notary v1 (TUF) collection."""
