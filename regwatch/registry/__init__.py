"""Speaking the distribution protocol: who we are, how we prove it, what we ask."""
