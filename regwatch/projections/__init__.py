"""Read models folded from events: pure, no I/O."""
