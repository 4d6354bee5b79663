"""musicrec_common."""
