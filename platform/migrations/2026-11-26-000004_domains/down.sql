DROP TABLE site_domains;
