"""musicrec_cli."""
