"""Review of tumour contours: the review record beside a mask, and the per-reader review worklists."""
