-- voxbridge schema 2: a Dial's B-leg has its own CDR, linked to the A-leg it belongs to
-- (SPEC §11.2). NULL for every call voxbridge was handed itself.
ALTER TABLE cdrs ADD COLUMN parent_call_uuid TEXT;
