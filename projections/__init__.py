"""The read side: projection workers that build read models, and the query API."""
