"""Understanding the bytes a registry moves: media types, digests, layers. No network here."""
