"""The BFT ledger: Tendermint consensus over an RFC 6962 attestation log."""

__all__: list[str] = []
