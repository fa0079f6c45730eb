"""An imaging study: its series, the sequence role of each (T2W, DWI, ADC, CE-T1WI), loading."""
