-- One counter that every revocation (of a grant, with its tokens and
-- sessions) and every session deletion moves on, in the same transaction.
-- Each instance keeps verified tokens and sessions in memory and polls this
-- counter: when it moved, everything cached is checked against the store
-- again, so a revocation on one instance is seen by every other within the
-- polling period.
CREATE TABLE revocation_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO revocation_epoch (id, epoch) VALUES (1, 0);
