"""Browser tests of the web review app (Playwright + Debian Chromium against a real server)."""
