-- The expiry the sites' members and the admins were last told of (a certificate that expires
-- within 14 days and was not renewed): each expiry is told once.
ALTER TABLE certificates ADD COLUMN expiry_told TIMESTAMPTZ;
