-- Each attempt records the URL it was sent to, API key parameter values masked: the
-- subscription's URL may change later, and the record must say where this attempt went.
ALTER TABLE delivery_attempts ADD COLUMN url text;
