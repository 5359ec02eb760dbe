-- Retention (store/retention.go, fleet-server/retention): the sweeper looks
-- for bodies still held past their limit, and for metadata past its age.
CREATE INDEX records_held ON records (received_at) WHERE sealed IS NOT NULL;
CREATE INDEX records_received ON records (received_at);
