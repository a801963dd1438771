-- Create a zone if it is new; returns nothing when it already exists.
INSERT INTO zones (name, synthetic) VALUES ($1, $2)
ON CONFLICT (name) DO NOTHING
RETURNING id
