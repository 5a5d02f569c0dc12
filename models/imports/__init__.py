"""The Supabase import: the import map, runs, their report, the step interface and the runner."""
