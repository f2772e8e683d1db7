DROP TABLE audit_log;
DROP TABLE operation_actions;
DROP TABLE operations;
DROP TABLE site_members;
DROP TABLE sites;
DROP TABLE images;
