"""Reading and writing studies, case folders and images; geometry; atomic writes."""
