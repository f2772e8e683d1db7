ALTER TABLE certificates DROP COLUMN expiry_told;
