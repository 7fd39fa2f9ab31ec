"""regwatch: watch container registries and keep an audit trail of every tag."""

__version__ = "0.1.0"
