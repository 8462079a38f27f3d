//! pam_veil.so (being written).
