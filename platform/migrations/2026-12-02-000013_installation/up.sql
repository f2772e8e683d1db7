-- This installation's own id, made once: it marks what Director makes outside its own
-- database (the sites' databases and roles on an operator's server), so that it never takes
-- over, or drops, what another installation or a person made there.
CREATE TABLE installation (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    id text NOT NULL DEFAULT gen_random_uuid()::text
);
INSERT INTO installation DEFAULT VALUES;
