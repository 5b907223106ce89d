-- kaizen metadata schema, version 2. A rename's audit entry keeps the model's previous name, so
-- the audit log of a model can follow it back through its renames.
ALTER TABLE registry_audit ADD COLUMN previous_name TEXT
