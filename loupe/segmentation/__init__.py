"""The partition methods behind loupe.segment, one module each, and what they share."""
