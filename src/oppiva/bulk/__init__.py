"""What every bulk import shares: reading files as string batches, rejects, the bulk connection."""
