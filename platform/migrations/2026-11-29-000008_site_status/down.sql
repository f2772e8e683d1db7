DROP TABLE site_status;
