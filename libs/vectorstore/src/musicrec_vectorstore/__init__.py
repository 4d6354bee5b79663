"""musicrec_vectorstore."""
