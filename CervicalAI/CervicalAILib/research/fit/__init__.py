"""Fitting risk models from a cohort feature table (the chain of paper 004, Bao et al., the DLRC nomogram) and writing their bundles."""
