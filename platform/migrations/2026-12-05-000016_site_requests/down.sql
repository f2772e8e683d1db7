DROP TABLE site_request_steps;
DROP TABLE site_requests;
DROP TABLE site_policy;
