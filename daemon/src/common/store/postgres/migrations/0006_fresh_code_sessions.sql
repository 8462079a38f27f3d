-- The fresh-code window's session bindings: `username` passed password
-- and code in audit session `session` of host `host`'s boot `boot`,
-- bound at `bound_at`. Session ids are per kernel and boot, so the key
-- names both. Additive: older hosts never touch this table. Plain
-- grants: the login role binds, reads and unbinds; the admin role may
-- clear it.
CREATE TABLE fresh_code_sessions (
    host text COLLATE "C" NOT NULL,
    boot text COLLATE "C" NOT NULL,
    session bigint NOT NULL,
    username text COLLATE "C" NOT NULL,
    bound_at bigint NOT NULL,
    PRIMARY KEY (host, boot, session, username)
);
CREATE INDEX fresh_code_sessions_by_bound_at ON fresh_code_sessions (bound_at);
REVOKE ALL ON fresh_code_sessions FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'veil_login') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON fresh_code_sessions TO veil_login;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'veil_admin') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON fresh_code_sessions TO veil_admin;
    END IF;
END $$;
