"""musicrec_recommender."""
