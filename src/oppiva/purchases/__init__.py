"""Purchase history: the catalogue, outlets, receipts and returns, the till API and bulk import."""
