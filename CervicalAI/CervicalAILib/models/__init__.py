"""Model bundles, scores, the DLRC logistic model and its nomogram."""
