-- 6: the fresh-code window. A row says that `user` passed password and
-- code in the audit session `session` of this host's boot `boot`, bound
-- at `bound_at` (pam_veil's session phase, checked by veild from /proc).
-- Within a service's fresh_code_window_s of it, that service's code may
-- be left empty in the same session. Pruned an hour after binding.
CREATE TABLE fresh_code_sessions (
    host TEXT NOT NULL,
    boot TEXT NOT NULL,
    session INTEGER NOT NULL,
    user TEXT NOT NULL,
    bound_at INTEGER NOT NULL,
    PRIMARY KEY (host, boot, session, user)
) WITHOUT ROWID;
