"""musicrec_ingestor."""
