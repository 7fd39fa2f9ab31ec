"""The append-only event log: schema, engine tuning, the store itself and its migrations."""
