"""The research side: cohort extraction, model fitting, validation statistics, the synthetic generator, network training, study reports. It may import the engine; the engine never imports it."""
