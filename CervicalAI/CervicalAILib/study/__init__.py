"""An imaging study: its series, the sequence role of each (T2W, DWI, ADC, CE-T1WI), loading.

Modules, importing one way: `recognition` (what a series looks like, from its tags) <- `series`
(`Series`, `Study`) <- `roles` (which series plays each role) <- `load` (`load_study`, `require_role`).
"""
