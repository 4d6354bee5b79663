"""musicrec_catalog."""
