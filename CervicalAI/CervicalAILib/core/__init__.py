"""The engine's ground floor (standard library only): errors, progress, atomic writes, the output-path guard, strict JSON input, hashing, the background process runner."""
