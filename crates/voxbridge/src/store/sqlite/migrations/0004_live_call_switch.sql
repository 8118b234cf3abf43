-- voxbridge schema 4: the switch a live call is on (SPEC §14), so reconciliation after a
-- restart asks that switch about it when several `[[switch]]` are configured. Empty
-- when unknown (rows of an older run, calls of Asterisk).

ALTER TABLE live_calls ADD COLUMN switch_name TEXT NOT NULL DEFAULT '';
