"""Scoring one patient with a risk-model bundle: ComBat, Rad_score and DL_score, the DLRC probability, its nomogram, staging."""
