-- An agent is found by the certificate it presents on every call: its current one or, just
-- after a renewal, the previous one. Without this index the second half of that lookup read
-- every agent, on every call of every agent.
CREATE INDEX agents_previous_fingerprint ON agents (previous_fingerprint)
    WHERE previous_fingerprint IS NOT NULL;
