"""The consumer: ``farm pull`` and ``farm verify`` check an artifact against the ledger."""
