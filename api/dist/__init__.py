"""The read-only distribution node: follows the ledger, mirrors and serves committed artifacts."""
