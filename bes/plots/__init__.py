"""Pictures for people: mesh heat maps and other PNGs written by tasks and reports."""
