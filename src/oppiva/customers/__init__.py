"""The customer register: people, organisations, identities, merges and the contact timeline."""
